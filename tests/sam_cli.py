"""The real SAM CLI, for the integration tests of ``nativebuild sam build``.

aws-sam-cli pins versions of boto3, click and pydantic of its own, so it is never installed
beside nativebuild and the test tools: ``uv.lock`` locks it in the ``sam`` dependency group (a
fork of the resolution), and the integration tier installs that group alone into ``.tox/sam``
(tox.ini), pointing ``TEST_SAM_CLI`` at its ``sam``. A missing ``sam`` fails the test:
the integration tier must not quietly skip what it exists to check.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = (
    "UV_PROJECT_ENVIRONMENT=.tox/sam uv sync --locked --only-group sam --no-install-project "
    "(`tox run -e integration` does it)"
)


def sam_path() -> Path:
    configured = os.environ.get("TEST_SAM_CLI")
    return Path(configured) if configured else ROOT / ".tox" / "sam" / "bin" / "sam"


@pytest.fixture(scope="session")
def sam() -> Path:
    """The ``sam`` executable of the locked ``sam`` group."""
    path = sam_path()
    if not path.is_file():
        pytest.fail(f"the SAM CLI is not installed at {path}: {INSTALL}")
    return path


def run_sam(
    sam: Path, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
    timeout: int = 1800,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``sam ARGS`` in ``cwd``: no telemetry, no update check, output captured."""
    environment = {
        **os.environ, "SAM_CLI_TELEMETRY": "0", "SAM_CLI_DISABLE_UPDATE_CHECK": "1", **(env or {})
    }  # fmt: skip
    return subprocess.run(
        [str(sam), *args], cwd=cwd, env=environment, capture_output=True, text=True,
        check=False, timeout=timeout,
    )  # fmt: skip
