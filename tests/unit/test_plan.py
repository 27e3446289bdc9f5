"""The per-pin decision: cached wheel, download, cached build, or compile."""

from __future__ import annotations

import dataclasses

import pytest

from nativebuild.pins import Pin
from nativebuild.plan.distributions import Action, BuildPlan, PlanItem, make_plan

WHEEL = Pin(
    name="markupsafe",
    version="2.1.5",
    filename="MarkupSafe-2.1.5-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    url="https://files.example/MarkupSafe-2.1.5-cp39-cp39-manylinux_2_17_x86_64.whl",
    sha256="1" * 64,
)
SDIST = Pin(
    name="pyyaml",
    version="6.0.1",
    filename="PyYAML-6.0.1.tar.gz",
    url="https://files.example/PyYAML-6.0.1.tar.gz",
    sha256="2" * 64,
)
KEY = "k" * 64


@pytest.mark.parametrize(
    ("pin", "cached_files", "cached_built", "action", "key"),
    [
        (WHEEL, {WHEEL.sha256}, set(), Action.CACHED_WHEEL, ""),
        (WHEEL, set(), set(), Action.DOWNLOAD, ""),
        (WHEEL, {SDIST.sha256}, {KEY}, Action.DOWNLOAD, ""),
        (SDIST, set(), {KEY}, Action.CACHED_BUILD, KEY),
        (SDIST, {SDIST.sha256}, {KEY}, Action.CACHED_BUILD, KEY),
        (SDIST, set(), set(), Action.COMPILE, KEY),
        # The sdist is in the cache but was never compiled with this key: still a compile.
        (SDIST, {SDIST.sha256}, {"other" * 8}, Action.COMPILE, KEY),
    ],
    ids=[
        "wheel-cached",
        "wheel-download",
        "wheel-other-files-cached",
        "sdist-built-before",
        "sdist-and-build-cached",
        "sdist-compile",
        "sdist-other-key-cached",
    ],
)
def test_make_plan_decision(
    pin: Pin, cached_files: set[str], cached_built: set[str], action: Action, key: str
) -> None:
    compile_keys = {SDIST.name: KEY}
    plan = make_plan(
        [pin], cached_files=cached_files, compile_keys=compile_keys, cached_built=cached_built
    )
    (item,) = plan.items
    assert item.pin == pin
    assert item.action is action
    assert item.compile_key == key
    assert item.reason.strip()


def test_reasons_say_why() -> None:
    plan = make_plan(
        [WHEEL, SDIST], cached_files=set(), compile_keys={SDIST.name: KEY}, cached_built=set()
    )
    download, compile_ = plan.items
    assert "wheel" in download.reason
    assert "sdist" in compile_.reason
    assert "no wheel fits" in compile_.reason


@pytest.mark.parametrize(
    ("action", "source"),
    [
        (Action.CACHED_WHEEL, "cache"),
        (Action.CACHED_BUILD, "cache"),
        (Action.DOWNLOAD, "download"),
        (Action.COMPILE, "compiled"),
    ],
)
def test_source(action: Action, source: str) -> None:
    assert PlanItem(pin=WHEEL, action=action, reason="r").source == source


def test_action_values_are_stable() -> None:
    """They appear in JSON output; renaming one is a breaking change."""
    assert [a.value for a in Action] == ["cached-wheel", "download", "cached-build", "compile"]


def _wheel(name: str, sha: str) -> Pin:
    return dataclasses.replace(
        WHEEL, name=name, filename=f"{name}-1.0-py3-none-any.whl", sha256=sha
    )


def _sdist(name: str, sha: str) -> Pin:
    return dataclasses.replace(SDIST, name=name, filename=f"{name}-1.0.tar.gz", sha256=sha)


MIXED = [
    _sdist("zope-interface", "z" * 64),
    _wheel("six", "6" * 64),
    _sdist("cffi", "c" * 64),
    _wheel("attrs", "a" * 64),
    _wheel("boto3", "b" * 64),
    _sdist("pyyaml", "y" * 64),
]
MIXED_KEYS = {"zope-interface": "key-z", "cffi": "key-c", "pyyaml": "key-y"}


def mixed_plan() -> BuildPlan:
    return make_plan(
        MIXED,
        cached_files={"6" * 64, "z" * 64},
        compile_keys=MIXED_KEYS,
        cached_built={"key-c"},
    )


def test_items_sorted_by_name() -> None:
    names = [item.pin.name for item in mixed_plan().items]
    assert names == ["attrs", "boto3", "cffi", "pyyaml", "six", "zope-interface"]


def test_mixed_plan_actions() -> None:
    actions = {item.pin.name: item.action for item in mixed_plan().items}
    assert actions == {
        "attrs": Action.DOWNLOAD,
        "boto3": Action.DOWNLOAD,
        "cffi": Action.CACHED_BUILD,
        "pyyaml": Action.COMPILE,
        "six": Action.CACHED_WHEEL,
        "zope-interface": Action.COMPILE,
    }
    keys = {item.pin.name: item.compile_key for item in mixed_plan().items}
    assert keys["zope-interface"] == "key-z"
    assert keys["pyyaml"] == "key-y"
    assert keys["six"] == ""


def test_counts_and_summary() -> None:
    plan = mixed_plan()
    assert plan.count(Action.CACHED_WHEEL) == 1
    assert plan.count(Action.CACHED_BUILD) == 1
    assert plan.count(Action.DOWNLOAD) == 2
    assert plan.count(Action.COMPILE) == 2
    assert plan.summary() == "plan: 6 distributions: 2 cached, 2 to download, 2 to compile"


def test_needs_container_only_to_compile() -> None:
    assert mixed_plan().needs_container
    warm = make_plan(
        MIXED,
        cached_files={p.sha256 for p in MIXED},
        compile_keys=MIXED_KEYS,
        cached_built=set(MIXED_KEYS.values()),
    )
    assert not warm.needs_container
    assert warm.summary() == "plan: 6 distributions: 6 cached, 0 to download, 0 to compile"
    downloads_only = make_plan([WHEEL], cached_files=set(), compile_keys={}, cached_built=set())
    assert not downloads_only.needs_container


def test_empty_plan() -> None:
    plan = make_plan([], cached_files=[], compile_keys={}, cached_built=[])
    assert plan.items == ()
    assert not plan.needs_container
    assert plan.summary() == "plan: 0 distributions: 0 cached, 0 to download, 0 to compile"


def test_accepts_one_shot_iterables() -> None:
    """cached_files and cached_built may be generators: each is read once, into a set."""
    plan = make_plan(
        MIXED,
        cached_files=(sha for sha in ["6" * 64]),
        compile_keys=MIXED_KEYS,
        cached_built=(key for key in ["key-c", "key-y"]),
    )
    actions = {item.pin.name: item.action for item in plan.items}
    assert actions["six"] is Action.CACHED_WHEEL
    assert actions["cffi"] is Action.CACHED_BUILD
    assert actions["pyyaml"] is Action.CACHED_BUILD
    assert actions["zope-interface"] is Action.COMPILE
