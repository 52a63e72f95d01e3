"""Sharing modes of learners across a network (MPLP.md §3), named once for the engine and settings.

`layer`: one learner per node type per layer; `kind`: one per node type and slot for the whole
network (standardisation and out_scale stay per layer); `all`: like `kind`, and standardisation
and out_scale are shared too. A module of its own so that reading settings does not import torch.
"""

SHARINGS = ("layer", "kind", "all")
