"""Which engine of an architecture's pool compiles which sdist (pure).

Longest job first onto the least-loaded engine (the LPT rule: within 4/3 of the best possible
finishing time, and good in practice). A job's size is estimated from its sdist's size: bigger
sources have more to compile. Engines that failed get nothing; their jobs go to the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoolJob:
    key: str  # the job's cache key: unique within one target
    size: int  # an estimate of its work (the sdist's bytes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Assignment:
    """Each engine's jobs, by engine name; engines that get nothing are absent."""

    jobs: Mapping[str, tuple[str, ...]]

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(self.jobs)


def assign(
    jobs: Sequence[PoolJob],
    engines: Sequence[str],
    *,
    failed: Collection[str] = (),
) -> Assignment | None:
    """Spread ``jobs`` over the ``engines`` that have not ``failed``; None when none is left
    (and there is something to do). Ties go to the engine listed first, and jobs of one size
    are taken in key order, so the same inputs always give the same assignment."""
    usable = [engine for engine in dict.fromkeys(engines) if engine not in failed]
    if not jobs:
        return Assignment(jobs={})
    if not usable:
        return None
    load = dict.fromkeys(usable, 0)
    chosen: dict[str, list[str]] = {engine: [] for engine in usable}
    for job in sorted(jobs, key=lambda j: (-j.size, j.key)):
        engine = min(usable, key=lambda name: (load[name], usable.index(name)))
        chosen[engine].append(job.key)
        load[engine] += max(job.size, 1)  # an empty sdist still takes a container's time
    return Assignment(jobs={engine: tuple(keys) for engine, keys in chosen.items() if keys})
