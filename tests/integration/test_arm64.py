"""Both architectures in one run on an x86_64 engine: arm64 compiled under QEMU, each archive
with the right ELF machine, each importing in its own python3.13 runtime stand-in. The remote
builder case runs python3.9, whose arm64 build stand-in the second engine holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nativebuild.engine.orphans import OWNER_LABEL
from tests.standins import PLATFORM, PY39, PY313

pytestmark = pytest.mark.docker

STANDIN = PY313
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
        "markupsafe==3.0.2\n--no-binary markupsafe\nsix==1.16.0\n"
    )
    (project / "app" / "handler.py").write_text(
        "import platform, markupsafe._speedups\nMACHINE = platform.machine()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
         "--src", str(project / "app"), *STANDIN.build_args("x86_64", runtime_image=False),
         "--arch", "arm64", "--cache-dir", str(tmp_path / "cache"),
         "-o", str(project / "dist"), "--json"],
        capture_output=True, text=True, env=dict(os.environ), check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    archives = {a["arch"]: Path(a["path"]) for a in result["archives"]}
    assert set(archives) == {"x86_64", "arm64"}
    assert elf_machines(archives["x86_64"]) == {EM_X86_64}
    assert elf_machines(archives["arm64"]) == {EM_AARCH64}
    assert "markupsafe 3.0.2 for arm64 under emulation" in done.stderr
    downloads = [line for line in done.stderr.splitlines() if "downloaded six-1.16.0" in line]
    assert len(downloads) == 1, "the two targets share one download"
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        task = tmp_path / f"task-{arch}"
        zipfile.ZipFile(archives[arch]).extractall(task)
        ran = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--platform", PLATFORM[arch],
             "-v", f"{task}:/var/task:ro", STANDIN.runtime_for(arch),
             STANDIN.interpreter, "-c", "import handler; print(handler.MACHINE)"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == machine


BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


@pytest.mark.skipif(not BINFMT.exists(), reason="needs QEMU registered for arm64 to switch it off")
def test_without_emulation_the_build_fails_fast_with_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "requirements.txt").write_text("markupsafe==3.0.2\n--no-binary markupsafe\n")
    BINFMT.write_text("0")  # disable the handler; restored below whatever happens
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nativebuild", "build", "-r", str(project / "requirements.txt"),
             *STANDIN.build_args("arm64", runtime_image=False),
             "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist")],
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
    build = subprocess.Popen(
        [sys.executable, "-m", "nativebuild", "build", "--project", str(project),
         "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
         *PY39.build_args("arm64", runtime_image=False),
         "--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NATIVEBUILD_KEEP_CONTAINER": "1"},
    )  # fmt: skip
    stdout, stderr = build.communicate(timeout=900)
    done = subprocess.CompletedProcess(build.args, build.returncode, stdout, stderr)
    # Kept containers carry their owner (host/pid/start): this build's, whoever else shares the
    # engine meanwhile.
    ours = f"/{build.pid}/"

    def owned(found: list[dict[str, object]]) -> list[dict[str, object]]:
        return [
            c for c in found
            if ours in str(c["Config"]["Labels"].get(OWNER_LABEL, ""))  # type: ignore[index]
        ]  # fmt: skip

    try:
        assert done.returncode == 0, done.stderr
        kept = owned(containers(SECOND_ENGINE))
        assert kept, "the arm64 containers ran on the builder"
        for container in kept:
            assert container["Mounts"] == [], "no host path is bind-mounted on a remote engine"
            assert container["Config"]["Image"] == PY39.build_image.format(arch="arm64")  # type: ignore[index]
        assert owned(containers(None)) == [], "nothing ran locally"
        archive = Path(json.loads(done.stdout)["archives"][0]["path"])
        assert elf_machines(archive) == {EM_AARCH64}
    finally:
        ids = [str(c["Id"]) for c in owned(containers(SECOND_ENGINE))]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env={**os.environ, "DOCKER_HOST": SECOND_ENGINE},
                           capture_output=True, check=False)  # fmt: skip
