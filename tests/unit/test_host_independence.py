"""The planner decides for the target, never for the host: the same answers on a Mac with
Apple silicon as on a Linux x86_64 machine."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import pytest

from nativebuild.index.pip_config import IndexSettings
from nativebuild.inputs.locked import LockedPackage, choose_files
from nativebuild.pins import FileRef
from nativebuild.plan.distributions import make_plan
from nativebuild.resolve.host import compile_arguments
from nativebuild.targets import Architecture, Target, get_runtime

HOSTS = {
    "macos-arm64": {
        "sys.platform": "darwin",
        "machine": "arm64",
        "system": "Darwin",
        "os.name": "posix",
    },
    "linux-x86_64": {
        "sys.platform": "linux",
        "machine": "x86_64",
        "system": "Linux",
        "os.name": "posix",
    },
    "windows-amd64": {
        "sys.platform": "win32",
        "machine": "AMD64",
        "system": "Windows",
        "os.name": "nt",
    },
}


def as_host(monkeypatch: pytest.MonkeyPatch, host: dict[str, str]) -> None:
    monkeypatch.setattr(sys, "platform", host["sys.platform"])
    monkeypatch.setattr(platform, "machine", lambda: host["machine"])
    monkeypatch.setattr(platform, "system", lambda: host["system"])


def ref(filename: str) -> FileRef:
    return FileRef(
        url=f"https://files/{filename}", filename=filename, sha256=filename[:8].ljust(64, "0")
    )


PACKAGES = (
    LockedPackage(
        name="numpy", version="2.1.3", marker=None, sdist=ref("numpy-2.1.3.tar.gz"), origin="t",
        wheels=(
            ref("numpy-2.1.3-cp312-cp312-macosx_14_0_arm64.whl"),
            ref("numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
            ref("numpy-2.1.3-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"),
            ref("numpy-2.1.3-cp312-cp312-win_amd64.whl"),
        ),
    ),
    LockedPackage(name="appnope", version="0.1.4", marker="sys_platform == 'darwin'",
                  wheels=(ref("appnope-0.1.4-py2.py3-none-any.whl"),), sdist=None, origin="t"),
    LockedPackage(name="uvloop", version="0.21.0", marker="sys_platform == 'linux' and platform_machine == 'aarch64'",
                  wheels=(), sdist=ref("uvloop-0.21.0.tar.gz"), origin="t"),
)  # fmt: skip


def decide(arch: Architecture) -> tuple[Any, ...]:
    target = Target(
        runtime=get_runtime("python3.12"), arch=arch, glibc=get_runtime("python3.12").glibc,
        build_image="b", runtime_image="r",
    )  # fmt: skip
    pins = choose_files(PACKAGES, target)
    plan = make_plan(
        pins,
        cached_files=(),
        compile_keys={p.name: "k" * 64 for p in pins if not p.is_wheel},
        cached_built=(),
    )
    args = compile_arguments(
        target,
        requirements=Path("r.txt"),
        constraints=None,
        output=Path("pylock.toml"),
        index=IndexSettings(),
    )
    return pins, [(i.pin.name, i.action) for i in plan.items], args, target.marker_environment()


@pytest.mark.parametrize("arch", list(Architecture))
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_host_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, host: str, arch: Architecture
) -> None:
    expected = decide(arch)
    as_host(monkeypatch, HOSTS[host])
    assert decide(arch) == expected


def test_the_decisions_are_the_targets() -> None:
    x86_pins, _, x86_args, _ = decide(Architecture.X86_64)
    arm_pins, arm_actions, arm_args, _ = decide(Architecture.ARM64)
    assert [p.filename for p in x86_pins] == [
        "numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ]
    assert [p.filename for p in arm_pins] == [
        "numpy-2.1.3-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "uvloop-0.21.0.tar.gz",
    ]
    assert ("uvloop", "compile") in arm_actions
    assert x86_args[x86_args.index("--python-platform") + 1] == "x86_64-manylinux_2_34"
    assert arm_args[arm_args.index("--python-platform") + 1] == "aarch64-manylinux_2_34"
