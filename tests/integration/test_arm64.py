"""Both architectures in one run on an x86_64 engine: arm64 compiled under QEMU, each archive
with the right ELF machine, each importing in its own runtime stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
EM_X86_64, EM_AARCH64 = 62, 183  # ELF e_machine values


def elf_machines(archive: Path) -> set[int]:
    machines = set()
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name.endswith(".so"):
                header = zf.read(name)[:20]
                assert header[:4] == b"\x7fELF", name
                machines.add(int.from_bytes(header[18:20], "little"))
    return machines


def test_both_architectures_in_one_run(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    (project / "requirements.txt").write_text(
        "markupsafe==2.1.5\n--no-binary markupsafe\nsix==1.16.0\n"
    )
    (project / "app" / "handler.py").write_text(
        "import platform, markupsafe._speedups\nMACHINE = platform.machine()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
         "--src", str(project / "app"), "--runtime", "python3.9", "--arch", "x86_64", "--arch", "arm64",
         "--build-image", BUILD_IMAGE, "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"),
         "-o", str(project / "dist"), "--json"],
        capture_output=True, text=True, env=dict(os.environ), check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    archives = {a["arch"]: Path(a["path"]) for a in result["archives"]}
    assert set(archives) == {"x86_64", "arm64"}
    assert elf_machines(archives["x86_64"]) == {EM_X86_64}
    assert elf_machines(archives["arm64"]) == {EM_AARCH64}
    assert "markupsafe 2.1.5 for arm64 under emulation" in done.stderr
    downloads = [line for line in done.stderr.splitlines() if "downloaded six-1.16.0" in line]
    assert len(downloads) == 1, "the two targets share one download"
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        task = tmp_path / f"task-{arch}"
        zipfile.ZipFile(archives[arch]).extractall(task)
        ran = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--platform",
             "linux/arm64" if arch == "arm64" else "linux/amd64",
             "-v", f"{task}:/var/task:ro", f"nativebuild-test/runtime-python3.9:{arch}",
             "/var/lang/bin/python3.9", "-c", "import handler; print(handler.MACHINE)"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == machine


BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


@pytest.mark.skipif(not BINFMT.exists(), reason="needs QEMU registered for arm64 to switch it off")
def test_without_emulation_the_build_fails_fast_with_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "requirements.txt").write_text("markupsafe==2.1.5\n--no-binary markupsafe\n")
    BINFMT.write_text("0")  # disable the handler; restored below whatever happens
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
             "--runtime", "python3.9", "--arch", "arm64", "--build-image", BUILD_IMAGE,
             "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist")],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    finally:
        BINFMT.write_text("1")
    assert done.returncode == 15, done.stderr
    assert "cannot run arm64 containers" in done.stderr
    assert "tonistiigi/binfmt --install arm64" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "dist").exists()


SECOND_ENGINE = "unix:///run/nb2.sock"  # started by tests/images/second-engine


def containers(host: str | None) -> list[dict[str, object]]:
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=org.nativebuild"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    ids = listed.stdout.split()
    if not ids:
        return []
    inspected = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, env=env, check=True
    )
    found: list[dict[str, object]] = json.loads(inspected.stdout)
    return found


def test_arm64_compiles_on_its_own_builder_without_bind_mounts(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "app").mkdir(parents=True)
    (project / "requirements.txt").write_text("markupsafe==2.1.5\n--no-binary markupsafe\n")
    (project / "app" / "handler.py").write_text("import markupsafe._speedups\n")
    # The stand-in builder's bridge has no NAT: its containers reach PyPI on the host network.
    (project / "pyproject.toml").write_text(
        f'[tool.nativebuild.builders]\narm64 = {{ host = "{SECOND_ENGINE}", network = "host" }}\n'
    )
    local_before = {str(c["Id"]) for c in containers(None)}
    done = subprocess.run(
        [sys.executable, "-m", "nativebuild", "build", "--project", str(project),
         "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
         "--runtime", "python3.9", "--arch", "arm64", "--build-image", BUILD_IMAGE,
         "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json"],
        capture_output=True, text=True, env={**os.environ, "NATIVEBUILD_KEEP_CONTAINER": "1"},
        check=False, timeout=900,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        kept = containers(SECOND_ENGINE)
        assert kept, "the arm64 containers ran on the builder"
        for container in kept:
            assert container["Mounts"] == [], "no host path is bind-mounted on a remote engine"
            assert container["Config"]["Image"] == "nativebuild-test/build-python3.9:arm64"  # type: ignore[index]
        assert {str(c["Id"]) for c in containers(None)} == local_before, "nothing ran locally"
        archive = Path(json.loads(done.stdout)["archives"][0]["path"])
        assert elf_machines(archive) == {EM_AARCH64}
    finally:
        ids = [str(c["Id"]) for c in containers(SECOND_ENGINE)]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env={**os.environ, "DOCKER_HOST": SECOND_ENGINE},
                           capture_output=True, check=False)  # fmt: skip
