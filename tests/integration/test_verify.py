"""`nativebuild verify` and the runtime probe against the python3.13 stand-in runtime images.

The native parts are built here with the host's gcc: ``native/_ext.so`` needs ``libfoo.so.1``
(DT_NEEDED, no RUNPATH), and ``native/__init__.py`` loads it with ctypes, so the import works
exactly when the loader finds libfoo in the runtime container.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nativebuild.abi.check import FindingKind
from nativebuild.abi.runtime_facts import probe_facts
from nativebuild.abi.verify import verify_archive
from nativebuild.archive.plan import plan_function_archive, write_zip
from nativebuild.cache.local import LocalCache
from nativebuild.cli import app
from nativebuild.config.settings import Settings
from nativebuild.engine.docker import DockerRunner
from nativebuild.reporting import NullReporter
from nativebuild.targets import Architecture, GlibcVersion, Target
from tests.elffixtures import libfoo, uses_foo
from tests.standins import PY313
from tests.wheelfactory import make_tree, make_wheel

STANDIN = PY313
STANDIN_RUNTIME = STANDIN.runtime_image

LOADS_EXT = (
    "import ctypes, os\nLIB = ctypes.CDLL(os.path.join(os.path.dirname(__file__), '_ext.so'))\n"
)
APP = "def handler(event, context):\n    return {'echo': event, 'fn': context.function_name}\n"
# Lambda's sandbox: a non-root user, and a read-only /var/task.
SANDBOX = """
import os
assert os.getuid() == 993, os.getuid()
try:
    open("/var/task/written-by-verify", "w")
except OSError:
    pass
else:
    raise AssertionError("/var/task is writable")
"""


def standin(arch: Architecture = Architecture.X86_64) -> Target:
    (target,) = Settings(
        runtime=STANDIN.runtime, archs=(arch,), runtime_image=STANDIN_RUNTIME
    ).targets()
    return target


@pytest.fixture
def cache(tmp_path: Path) -> LocalCache:
    return LocalCache(tmp_path / "cache")


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    build = tmp_path_factory.mktemp("native")
    foo = libfoo(build)
    return {
        "libfoo.so.1": foo.read_bytes(),
        "_ext.so": uses_foo(build, "_ext.so", foo).read_bytes(),
    }


def archive(tmp_path: Path, files: dict[str, str | bytes], name: str = "function") -> Path:
    """A function archive: the ``hello`` wheel (pure Python) plus ``files`` as the source."""
    wheel = make_wheel(
        tmp_path / "wheels", "hello", "1.0", {"hello/__init__.py": "GREETING = 'hi'\n"},
        dist_info={"top_level.txt": "hello\n"},
    )  # fmt: skip
    src = make_tree(tmp_path / f"src-{name}", files)
    out = tmp_path / "out" / f"{name}-{STANDIN.runtime}-x86_64.zip"
    write_zip(plan_function_archive([wheel], src, python=STANDIN.python), out)
    return out


def layer(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    src = make_tree(tmp_path / "layer-src", files)
    out = tmp_path / "out" / "layer.zip"
    write_zip(plan_function_archive([], src, python=STANDIN.python), out)
    return out


# --- the probe ---------------------------------------------------------------------------------


@pytest.mark.docker
def test_the_probe_of_the_standin_runtime_finds_glibc_2_41(cache: LocalCache) -> None:
    runner = DockerRunner()
    target = standin()
    kwargs = {
        "platform": "linux/amd64", "interpreter": target.runtime.interpreter_path,
        "runner": runner, "cache": cache, "reporter": NullReporter(),
    }  # fmt: skip
    facts = probe_facts(target.runtime_image, **kwargs)  # type: ignore[arg-type]
    assert facts.source == "probe"
    assert facts.glibc == GlibcVersion(major=2, minor=41)
    assert facts.machine == "x86_64"
    # The newest version libc.so.6 defines (2.41 added GLIBC_2.41 symbols), and C23's
    # __isoc23_* functions of 2.38, which Amazon Linux 2023 (2.34) lacks.
    assert facts.ceilings["GLIBC"] == (2, 41)
    assert facts.ceilings["GLIBCXX"] >= (3, 4, 33)  # gcc 14's libstdc++ in trixie
    assert "GLIBC_2.38" in facts.versions["libc.so.6"]
    assert "libc.so.6" in facts.libraries
    assert "libpq.so.5" not in facts.libraries
    assert facts.ld_library_path[-1] == "/opt/lib"
    started = runner.containers_started
    assert probe_facts(target.runtime_image, **kwargs) == facts  # type: ignore[arg-type]
    assert runner.containers_started == started, "the second probe must come from the cache"


# --- verify ------------------------------------------------------------------------------------


@pytest.mark.docker
def test_an_archive_whose_modules_import_passes(
    tmp_path: Path, cache: LocalCache, native: dict[str, bytes]
) -> None:
    zip_path = archive(
        tmp_path,
        {
            "app.py": APP,
            "sandbox.py": SANDBOX,
            "native/__init__.py": LOADS_EXT,
            "native/_ext.so": native["_ext.so"],
            "lib/libfoo.so.1": native["libfoo.so.1"],  # /var/task/lib is on LD_LIBRARY_PATH
        },
    )
    report = verify_archive(
        zip_path, standin(), runner=DockerRunner(), cache=cache, reporter=NullReporter(),
        handler="app.handler", event={"n": 1},
    )  # fmt: skip
    assert [(m.name, m.package, m.ok, m.error) for m in report.modules] == [
        ("app", None, True, None),
        ("hello", "hello 1.0", True, None),
        ("native", None, True, None),
        ("sandbox", None, True, None),
    ]
    assert report.handler is not None
    assert report.handler.ok, report.handler.detail
    assert json.loads(report.handler.result or "") == {"echo": {"n": 1}, "fn": "nativebuild-verify"}
    assert report.findings == ()
    assert report.ok


@pytest.mark.docker
def test_a_library_missing_from_the_runtime_fails_and_is_named(
    tmp_path: Path, cache: LocalCache, native: dict[str, bytes]
) -> None:
    zip_path = archive(
        tmp_path, {"native/__init__.py": LOADS_EXT, "native/_ext.so": native["_ext.so"]}
    )
    report = verify_archive(
        zip_path, standin(), runner=DockerRunner(), cache=cache, reporter=NullReporter()
    )
    assert not report.ok
    (failed,) = report.failed_modules
    assert failed.name == "native"
    assert "libfoo.so.1: cannot open shared object file" in (failed.error or "")
    (finding,) = report.findings
    assert (finding.kind, finding.path, finding.library) == (
        FindingKind.MISSING_LIBRARY, "native/_ext.so", "libfoo.so.1",
    )  # fmt: skip
    assert "probed" in finding.has


@pytest.mark.docker
def test_a_layer_at_opt_provides_the_library(
    tmp_path: Path, cache: LocalCache, native: dict[str, bytes]
) -> None:
    zip_path = archive(
        tmp_path, {"native/__init__.py": LOADS_EXT, "native/_ext.so": native["_ext.so"]}
    )
    lib_layer = layer(tmp_path, {"lib/libfoo.so.1": native["libfoo.so.1"]})
    report = verify_archive(
        zip_path, standin(), layers=[lib_layer], runner=DockerRunner(), cache=cache,
        reporter=NullReporter(),
    )  # fmt: skip
    assert report.ok, [m.error for m in report.failed_modules]


@pytest.mark.docker
def test_the_cli_exits_non_zero_on_a_failed_import(
    tmp_path: Path, native: dict[str, bytes]
) -> None:
    good = archive(tmp_path, {"app.py": APP}, name="good")
    bad = archive(
        tmp_path, {"native/__init__.py": LOADS_EXT, "native/_ext.so": native["_ext.so"]}, "bad"
    )
    common = ["--runtime-image", STANDIN_RUNTIME, "--cache-dir", str(tmp_path / "cache"), "-q"]
    runner = CliRunner()
    passed = runner.invoke(app, ["verify", str(good), *common, "--json"])
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["ok"] is True
    failed = runner.invoke(app, ["verify", str(bad), *common])
    assert failed.exit_code == 14, failed.output
    assert "1 of 2 modules failed to import (native)" in failed.stderr
    assert "libfoo.so.1" in failed.stdout


@pytest.mark.docker
def test_arm64_runs_the_arm64_image_and_catches_an_x86_64_library(
    tmp_path: Path, cache: LocalCache, native: dict[str, bytes]
) -> None:
    zip_path = archive(
        tmp_path,
        {"app.py": APP, "native/__init__.py": LOADS_EXT, "native/_ext.so": native["_ext.so"]},
    )
    target = standin(Architecture.ARM64)
    report = verify_archive(
        zip_path, target, runner=DockerRunner(), cache=cache, reporter=NullReporter()
    )
    assert report.platform == "linux/arm64"
    assert report.machine == "aarch64"  # where the imports ran: under QEMU on an x86_64 host
    results = {m.name: m for m in report.modules}
    assert results["app"].ok
    assert not results["native"].ok
    assert "_ext.so" in (results["native"].error or "")
    assert [(f.kind, f.path) for f in report.findings] == [
        (FindingKind.WRONG_MACHINE, "native/_ext.so")
    ]
