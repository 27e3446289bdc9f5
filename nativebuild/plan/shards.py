"""Shards of the compile work: which runner of a CI matrix compiles which sdist (pure).

A compile job's shard is a function of its cache key alone (the key is a sha256, so its value
modulo N spreads jobs evenly), so every runner that plans the same build agrees on the split
without talking to the others, and a job's shard never depends on what else is in the build or
on what the runner's cache holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from nativebuild.errors import ConfigError
from nativebuild.plan.distributions import Action, BuildPlan, PlanItem

_SHARD_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def shard_of(key: str, count: int) -> int:
    """The shard (1 to ``count``) of the compile job whose cache key is ``key``."""
    return int(key, 16) % count + 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shard:
    """Shard ``index`` of ``count`` (``--shard 2/3``), counted from 1 like CI matrices."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            msg = f"shard {self.index}/{self.count}: K must be between 1 and N in K/N."
            raise ConfigError(msg, hint="For example --shard 1/3, --shard 2/3 and --shard 3/3.")

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD_RE.fullmatch(text)
        if match is None:
            msg = f"shard {text!r} must look like K/N, e.g. 2/3 (shard 2 of 3)."
            raise ConfigError(msg)
        return cls(index=int(match.group(1)), count=int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def sdist_items(plan: BuildPlan) -> tuple[PlanItem, ...]:
    """The items of ``plan`` built from an sdist (to compile, or compiled before)."""
    return tuple(item for item in plan.items if item.compile_key)


def shard_plan(plan: BuildPlan, shard: Shard) -> BuildPlan:
    """What ``shard`` does of ``plan``: its own sdists (to compile, or cached), nothing else."""
    return BuildPlan(
        items=tuple(item for item in sdist_items(plan) if shard.owns(item.compile_key))
    )


def left_to_others(plan: BuildPlan, shard: Shard) -> tuple[PlanItem, ...]:
    """The sdists of ``plan`` that other shards compile."""
    return tuple(item for item in sdist_items(plan) if not shard.owns(item.compile_key))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardJob:
    """One compile job as a CI matrix sees it: ``nativebuild plan --json --shards N``."""

    name: str
    version: str
    arch: str
    key: str
    shard: str  # "K/N"

    @classmethod
    def of(cls, item: PlanItem, *, arch: str, count: int) -> ShardJob:
        return cls(
            name=item.pin.name,
            version=item.pin.version,
            arch=arch,
            key=item.compile_key,
            shard=str(Shard(index=shard_of(item.compile_key, count), count=count)),
        )


def compile_jobs(plans: list[tuple[str, BuildPlan]], count: int) -> tuple[ShardJob, ...]:
    """Every job still to compile in ``plans`` (by architecture), with its shard of ``count``."""
    return tuple(
        ShardJob.of(item, arch=arch, count=count)
        for arch, plan in plans
        for item in plan.items
        if item.action is Action.COMPILE
    )


def jobs_left_to_others(
    plans: Iterable[tuple[str, BuildPlan]], shard: Shard
) -> tuple[ShardJob, ...]:
    """The jobs of ``plans`` (by architecture) that other shards compile, each once (two
    dependency sets may share one)."""
    jobs = (
        ShardJob.of(item, arch=arch, count=shard.count)
        for arch, plan in plans
        for item in left_to_others(plan, shard)
    )
    return tuple(dict.fromkeys(jobs))


def matrix(jobs: tuple[ShardJob, ...]) -> list[dict[str, str]]:
    """The (architecture, shard) pairs that have something to compile, in a stable order: the
    ``include`` list of a CI matrix."""
    pairs = sorted({(job.arch, job.shard) for job in jobs}, key=lambda p: (p[0], _index(p[1])))
    return [{"arch": arch, "shard": shard} for arch, shard in pairs]


def _index(shard: str) -> int:
    return int(shard.split("/", 1)[0])
