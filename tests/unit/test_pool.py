"""The pool policy (sdists.pool): longest job first onto the least-loaded engine, nothing for
engines that failed, every job exactly once, and the same answer for the same inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nativebuild.sdists.pool import PoolJob, assign

ENGINES = ("default", "tcp://b:2376", "ssh://c")


def loads(jobs: list[PoolJob], assignment: dict[str, tuple[str, ...]]) -> dict[str, int]:
    size = {job.key: job.size for job in jobs}
    return {engine: sum(size[k] for k in keys) for engine, keys in assignment.items()}


def test_longest_first_onto_the_least_loaded() -> None:
    jobs = [PoolJob(key=k, size=s) for k, s in (("a", 7), ("b", 5), ("c", 4), ("d", 3), ("e", 1))]
    got = assign(jobs, ENGINES[:2])
    assert got is not None
    # a(7) -> default; b(5) -> b; c(4) -> b (5 < 7); d(3) -> default (9 > 7); e(1) -> b (9 < 10)
    assert got.jobs == {"default": ("a", "d"), "tcp://b:2376": ("b", "c", "e")}
    assert loads(jobs, dict(got.jobs)) == {"default": 10, "tcp://b:2376": 10}


def test_a_failed_engine_gets_nothing_and_its_jobs_go_to_the_others() -> None:
    jobs = [PoolJob(key=k, size=10) for k in "abcd"]
    got = assign(jobs, ENGINES, failed={"tcp://b:2376"})
    assert got is not None
    assert "tcp://b:2376" not in got.jobs
    assert sorted(k for keys in got.jobs.values() for k in keys) == list("abcd")
    assert {len(keys) for keys in got.jobs.values()} == {2}


def test_no_engine_left_is_none() -> None:
    assert assign([PoolJob(key="a", size=1)], ENGINES, failed=set(ENGINES)) is None
    assert assign([PoolJob(key="a", size=1)], []) is None


def test_nothing_to_do_needs_no_engine() -> None:
    got = assign([], ENGINES, failed=set(ENGINES))
    assert got is not None
    assert got.jobs == {}


def test_fewer_jobs_than_engines_leaves_the_last_idle() -> None:
    got = assign([PoolJob(key="only", size=100)], ENGINES)
    assert got is not None
    assert got.jobs == {"default": ("only",)}
    assert got.engines == ("default",)


def test_one_engine_takes_everything_in_one_batch() -> None:
    jobs = [PoolJob(key=k, size=i) for i, k in enumerate("abc")]
    got = assign(jobs, ["default"])
    assert got is not None
    assert got.jobs == {"default": ("c", "b", "a")}


def test_empty_sdists_still_spread() -> None:
    got = assign([PoolJob(key=k, size=0) for k in "abcd"], ENGINES[:2])
    assert got is not None
    assert {len(keys) for keys in got.jobs.values()} == {2}


job_lists = st.lists(
    st.builds(PoolJob, key=st.text("abcdefgh", min_size=1, max_size=4), size=st.integers(0, 10**6)),
    max_size=30,
    unique_by=lambda j: j.key,
)


@given(job_lists, st.integers(1, 5), st.sets(st.integers(0, 4)))
def test_every_job_once_on_a_usable_engine_and_stable(
    jobs: list[PoolJob], count: int, failed_at: set[int]
) -> None:
    engines = [f"e{i}" for i in range(count)]
    failed = {engines[i] for i in failed_at if i < count}
    got = assign(jobs, engines, failed=failed)
    if jobs and failed == set(engines):
        assert got is None
        return
    assert got is not None
    placed = [k for keys in got.jobs.values() for k in keys]
    assert sorted(placed) == sorted(j.key for j in jobs)
    assert not set(got.jobs) & failed
    assert set(got.jobs) <= set(engines)
    assert assign(list(reversed(jobs)), engines, failed=failed) == got  # order-independent


@given(job_lists, st.integers(2, 4))
def test_the_lpt_bound_holds(jobs: list[PoolJob], count: int) -> None:
    """No engine ends more than the largest job above the average load (the greedy rule's
    guarantee), so one slow engine never gets everything."""
    engines = [f"e{i}" for i in range(count)]
    got = assign(jobs, engines)
    assert got is not None
    if not jobs:
        return
    weights = [max(j.size, 1) for j in jobs]
    by_key = {j.key: max(j.size, 1) for j in jobs}
    per_engine = [sum(by_key[k] for k in keys) for keys in got.jobs.values()]
    assert max(per_engine) <= sum(weights) / count + max(weights)
