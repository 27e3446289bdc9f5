"""The tiers of tests/conftest.py, tried on a tiny copy of the test tree run by a real pytest:
markers choose the tier whatever the checkout's folder is called; an unmarked integration test
is a collection error; a skipped test fails the integration run, and fails CI unless no machine
could run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT_IGNORES_MODES, TIER_SKIP

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
PYTEST_INI = """[pytest]
addopts = -ra --strict-markers --strict-config -p no:cacheprovider
markers =
    docker: needs a running Docker engine
    network: needs the real package index
"""
UNIT = """import pytest

def test_plain():
    assert True
"""
INTEGRATION = """import pytest

@pytest.mark.docker
def test_engine():
    assert True

@pytest.mark.network
def test_index():
    assert True
"""


def checkout(root: Path, files: dict[str, str]) -> Path:
    """A checkout at ``root``: pytest.ini, the real conftest, and ``files`` under tests/."""
    tests = root / "tests"
    tests.mkdir(parents=True)
    (root / "pytest.ini").write_text(PYTEST_INI)
    (tests / "__init__.py").write_text("")
    shutil.copy(CONFTEST, tests / "conftest.py")
    for name, text in files.items():
        path = tests / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def pytest_in(root: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("folder", ["docker", "network"])
def test_a_checkout_in_a_folder_named_like_a_tier_still_runs_the_unit_tier(
    tmp_path: Path, folder: str
) -> None:
    root = checkout(
        tmp_path / folder,
        {"unit/test_unit.py": UNIT, "integration/test_integration.py": INTEGRATION},
    )
    done = pytest_in(root, "tests/unit", "tests/integration")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout, done.stdout
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 2, done.stdout
    assert all("tests/integration/test_integration.py" in line for line in skips)
    assert all(line.endswith(TIER_SKIP) for line in skips)
    ran = pytest_in(root, "tests", "--run-docker", "-m", "docker or network")
    assert "2 passed, 1 deselected" in ran.stdout, ran.stdout


def test_an_unmarked_integration_test_is_a_collection_error(tmp_path: Path) -> None:
    root = checkout(
        tmp_path / "c",
        {"integration/test_integration.py": INTEGRATION + UNIT.replace("import pytest\n", "")},
    )
    for args in (["tests"], ["tests", "--require-docker", "-m", "docker or network"]):
        done = pytest_in(root, *args)
        assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
        assert "tests/integration/test_integration.py::test_plain" in done.stderr
        assert "test_engine" not in done.stderr


def test_the_integration_run_fails_on_any_skipped_test(tmp_path: Path) -> None:
    skips_network = INTEGRATION.replace(
        "def test_index():\n    assert True", 'def test_index():\n    pytest.skip("no index")'
    )
    root = checkout(tmp_path / "c", {"integration/test_integration.py": skips_network})
    done = pytest_in(root, "tests", "--require-docker", "-m", "docker or network")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "test_integration.py::test_index (no index)" in done.stdout
    root = checkout(tmp_path / "d", {"integration/test_integration.py": INTEGRATION})
    done = pytest_in(root, "tests", "--require-docker", "-m", "docker or network")
    assert done.returncode == 0, done.stdout
    assert "2 passed" in done.stdout


def test_the_integration_run_fails_when_nothing_passed(tmp_path: Path) -> None:
    root = checkout(tmp_path / "c", {"integration/test_integration.py": INTEGRATION})
    done = pytest_in(root, "tests", "--require-docker", "-m", "docker and network")
    assert done.returncode != 0, done.stdout
    assert "no test passed" in done.stdout or "no tests ran" in done.stdout


MISSING_TOOL = """import pytest

def test_compiles():
    pytest.skip("gcc is not installed")
"""
NO_MACHINE_CAN = f"""import pytest

@pytest.mark.skipif(True, reason={ROOT_IGNORES_MODES!r})
def test_modes():
    assert False
"""


def test_in_ci_a_skip_for_a_missing_tool_fails_the_unit_tier(tmp_path: Path) -> None:
    root = checkout(
        tmp_path / "c",
        {
            "unit/test_unit.py": UNIT,
            "unit/test_tool.py": MISSING_TOOL,
            "integration/test_integration.py": INTEGRATION,
        },
    )
    on_a_laptop = pytest_in(root, "tests/unit", "tests/integration")
    assert on_a_laptop.returncode == 0, on_a_laptop.stdout
    in_ci = pytest_in(root, "tests/unit", "tests/integration", ci=True)
    assert in_ci.returncode == pytest.ExitCode.TESTS_FAILED, in_ci.stdout
    assert "tests/unit/test_tool.py::test_compiles (gcc is not installed)" in in_ci.stdout
    assert "test_engine" not in in_ci.stdout.split("skipped tests fail")[1].split("short test")[0]


def test_in_ci_only_the_allowed_skips_and_the_tier_skip_pass(tmp_path: Path) -> None:
    root = checkout(
        tmp_path / "c",
        {
            "unit/test_unit.py": UNIT,
            "unit/test_modes.py": NO_MACHINE_CAN,
            "integration/test_integration.py": INTEGRATION,
        },
    )
    done = pytest_in(root, "tests/unit", "tests/integration", ci=True)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped" in done.stdout
