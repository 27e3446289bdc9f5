"""Shards of the compile work (plan.shards): a stable function of the cache key, the same on
every runner, covering every sdist exactly once."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nativebuild.errors import ConfigError
from nativebuild.pins import Pin
from nativebuild.plan.distributions import Action, BuildPlan, PlanItem
from nativebuild.plan.shards import (
    Shard,
    ShardJob,
    compile_jobs,
    jobs_left_to_others,
    left_to_others,
    matrix,
    shard_of,
    shard_plan,
)

keys = st.binary(min_size=1, max_size=16).map(lambda b: hashlib.sha256(b).hexdigest())


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def item(name: str, action: Action) -> PlanItem:
    ext = "tar.gz" if action in (Action.COMPILE, Action.CACHED_BUILD) else "whl"
    filename = f"{name}-1.0.{ext}" if ext == "tar.gz" else f"{name}-1.0-py3-none-any.whl"
    pin = Pin(
        name=name, version="1.0", filename=filename, url=f"https://x/{filename}", sha256=key(name)
    )
    compile_key = key(f"built-{name}") if ext == "tar.gz" else ""
    return PlanItem(pin=pin, action=action, reason="", compile_key=compile_key)


PLAN = BuildPlan(
    items=(
        *(item(f"sdist{i}", Action.COMPILE) for i in range(12)),
        item("cached", Action.CACHED_BUILD),
        item("six", Action.DOWNLOAD),
        item("idna", Action.CACHED_WHEEL),
    )
)


@given(keys, st.integers(min_value=1, max_value=64))
def test_the_shard_is_in_range_and_a_function_of_the_key_alone(k: str, count: int) -> None:
    shard = shard_of(k, count)
    assert 1 <= shard <= count
    assert shard == shard_of(k, count)  # every runner agrees
    assert shard == int(k, 16) % count + 1


@given(st.lists(keys, min_size=1, max_size=30, unique=True), st.integers(min_value=1, max_value=8))
def test_the_shards_of_n_cover_every_key_exactly_once(all_keys: list[str], count: int) -> None:
    owners = {
        k: [i for i in range(1, count + 1) if Shard(index=i, count=count).owns(k)] for k in all_keys
    }
    assert all(len(found) == 1 for found in owners.values())


def test_shard_plans_split_the_sdists_and_leave_the_wheels_out() -> None:
    count = 3
    parts = [shard_plan(PLAN, Shard(index=i, count=count)) for i in range(1, count + 1)]
    names = [item.pin.name for part in parts for item in part.items]
    sdists = sorted(i.pin.name for i in PLAN.items if i.compile_key)
    assert sorted(names) == sdists  # disjoint, and together every sdist
    assert {"six", "idna"}.isdisjoint(names)  # wheels are the assembly's
    for index, part in enumerate(parts, start=1):
        shard = Shard(index=index, count=count)
        others = {i.pin.name for i in left_to_others(PLAN, shard)}
        assert others == set(sdists) - {i.pin.name for i in part.items}
        for planned in part.items:
            assert shard_of(planned.compile_key, count) == index


def test_one_shard_does_everything() -> None:
    only = Shard(index=1, count=1)
    assert [i.pin.name for i in shard_plan(PLAN, only).items] == [
        i.pin.name for i in PLAN.items if i.compile_key
    ]
    assert left_to_others(PLAN, only) == ()


@pytest.mark.parametrize(
    ("text", "index", "count"), [("2/3", 2, 3), (" 1 / 1 ", 1, 1), ("10/12", 10, 12)]
)
def test_parse(text: str, index: int, count: int) -> None:
    shard = Shard.parse(text)
    assert (shard.index, shard.count) == (index, count)
    assert str(shard) == f"{index}/{count}"


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "1/2/3", "-1/2", ""])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_compile_jobs_and_the_matrix_name_only_work_left_to_do() -> None:
    jobs = compile_jobs([("x86_64", PLAN), ("arm64", PLAN)], 4)
    assert {j.name for j in jobs} == {f"sdist{i}" for i in range(12)}  # not the cached one
    assert len(jobs) == 24
    for job in jobs:
        assert job.shard == f"{shard_of(job.key, 4)}/4"
    pairs = matrix(jobs)
    assert pairs == sorted(pairs, key=lambda p: (p["arch"], int(p["shard"].split("/")[0])))
    assert {(p["arch"], p["shard"]) for p in pairs} == {(j.arch, j.shard) for j in jobs}
    assert matrix(()) == []


def test_shard_job_of_an_item() -> None:
    planned = PLAN.items[0]
    job = ShardJob.of(planned, arch="arm64", count=5)
    assert (job.name, job.version, job.arch, job.key) == (
        "sdist0",
        "1.0",
        "arm64",
        planned.compile_key,
    )
    assert job.shard == f"{shard_of(planned.compile_key, 5)}/5"


def test_jobs_left_to_others_are_the_other_shards_sdists_once_per_arch() -> None:
    shard = Shard(index=1, count=3)
    others = {i.pin.name for i in left_to_others(PLAN, shard)}
    assert others  # 12 sdists over 3 shards: some are the others'
    # Two dependency sets of one architecture sharing the plan list each job once.
    jobs = jobs_left_to_others([("x86_64", PLAN), ("x86_64", PLAN), ("arm64", PLAN)], shard)
    assert sorted((j.arch, j.name) for j in jobs) == sorted(
        (arch, name) for arch in ("x86_64", "arm64") for name in others
    )
    assert all(j.shard != "1/3" for j in jobs)
    assert jobs_left_to_others([("x86_64", PLAN)], Shard(index=1, count=1)) == ()
