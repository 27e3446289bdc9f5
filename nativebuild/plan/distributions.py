"""What to do for each pinned distribution: a pure decision over what the cache holds."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence

from nativebuild.errors import CacheOnlyError
from nativebuild.pins import Pin
from nativebuild.targets import Target


class Action(enum.StrEnum):
    CACHED_WHEEL = "cached-wheel"  # a downloaded wheel already in the cache
    DOWNLOAD = "download"  # a binary wheel the target loads, to fetch
    CACHED_BUILD = "cached-build"  # an sdist we compiled before, same key
    COMPILE = "compile"  # an sdist to compile in the build image


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlanItem:
    pin: Pin
    action: Action
    reason: str
    compile_key: str = ""

    @property
    def source(self) -> str:
        """How the wheel was obtained, as the build result reports it."""
        if self.action in (Action.CACHED_WHEEL, Action.CACHED_BUILD):
            return "cache"
        return "download" if self.action is Action.DOWNLOAD else "compiled"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildPlan:
    items: tuple[PlanItem, ...]

    def count(self, action: Action) -> int:
        return sum(1 for item in self.items if item.action is action)

    @property
    def needs_container(self) -> bool:
        return self.count(Action.COMPILE) > 0

    def summary(self) -> str:
        cached = self.count(Action.CACHED_WHEEL) + self.count(Action.CACHED_BUILD)
        return (
            f"plan: {len(self.items)} distributions: {cached} cached, "
            f"{self.count(Action.DOWNLOAD)} to download, {self.count(Action.COMPILE)} to compile"
        )


def make_plan(
    pins: Sequence[Pin],
    *,
    cached_files: Iterable[str],
    compile_keys: Mapping[str, str],
    cached_built: Iterable[str],
) -> BuildPlan:
    """Decide per pin. ``cached_files`` holds sha256s of cached downloads, ``compile_keys``
    maps sdist pins to their build keys, ``cached_built`` holds keys the cache has."""
    files, built = set(cached_files), set(cached_built)
    items = []
    for pin in sorted(pins, key=lambda p: p.name):
        if pin.is_wheel:
            if pin.sha256 in files:
                items.append(PlanItem(pin=pin, action=Action.CACHED_WHEEL, reason="wheel in cache"))
            else:
                reason = "the best wheel for the target"
                items.append(PlanItem(pin=pin, action=Action.DOWNLOAD, reason=reason))
            continue
        key = compile_keys[pin.name]
        if key in built:
            reason = "compiled before with the same sdist, image and target"
            items.append(
                PlanItem(pin=pin, action=Action.CACHED_BUILD, reason=reason, compile_key=key)
            )
        else:
            reason = "no wheel fits the target (or --no-binary): compile the sdist"
            items.append(PlanItem(pin=pin, action=Action.COMPILE, reason=reason, compile_key=key))
    return BuildPlan(items=tuple(items))


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeedsCompile:
    name: str
    version: str
    target: str


def check_cache_only(plans: Iterable[tuple[Target, BuildPlan]]) -> None:
    """--cache-only: refuse, naming them, when any package would need compiling."""
    needed = [
        NeedsCompile(name=item.pin.name, version=item.pin.version, target=target.describe())
        for target, plan in plans
        for item in plan.items
        if item.action is Action.COMPILE
    ]
    if not needed:
        return
    names = ", ".join(f"{n.name} {n.version} ({n.target})" for n in needed)
    msg = f"--cache-only: not in the cache, so these would need compiling: {names}."
    hint = (
        "Run the build once where compiling is allowed (without --cache-only, with the same "
        "--cache and build image) so the compiled wheels reach the shared cache."
    )
    raise CacheOnlyError(msg, hint=hint)
