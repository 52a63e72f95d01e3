"""Parity with the authors' released checkpoints: replay golden inner-loop trajectories."""
