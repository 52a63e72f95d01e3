"""Small populations shared by the seed-batch and plateau tests: a tiny configuration, a lone run of
it, and the check that a member of a larger population equals that lone run."""

from __future__ import annotations

import pytest
import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import Member, ProtocolMember
from lbpbench.harness.population import Population

TINY = dict(message_size=4, hidden_size=4, mlp_widths=[32, 16], eval_tasks=6, meta_batch=2)


def tiny_configs(seeds: tuple[int, ...] = (0, 1), **kw: object) -> list[RunConfig]:
    return [RunConfig(**{**TINY, **kw, "seed": s}) for s in seeds]


def population(configs: list[RunConfig]) -> Population:
    return Population([ProtocolMember(c) for c in configs])


def lone_run(config: RunConfig, steps: int) -> Member:
    """`config` meta-trained alone (a population of one) for `steps` meta-steps."""
    pop = population([config])
    for _ in range(steps):
        if pop.live():
            pop.meta_step()
    pop.sync(0)
    return pop.members[0]


def assert_member_equals_run(member: Member, single: Member) -> None:
    assert member.step == single.step and member.diverged == single.diverged
    assert len(member.history) == len(single.history)
    for a, b in zip(member.history, single.history, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-9)
    for (name, p), (_, q) in zip(member.net.named_parameters(), single.net.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)
    if single.prior is not None:
        for k in single.prior:
            torch.testing.assert_close(member.prior[k], single.prior[k], atol=1e-5, rtol=1e-4)
