"""Lock inputs against the real tools and index: uv's own uv.lock, exported; PyPI's file lists."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.simple_api import SimpleIndex
from nativebuild.index.uv import HostUv, uv_environment
from nativebuild.inputs.locked import LockedPackage, applies
from nativebuild.inputs.lockfiles import load_locked

pytestmark = pytest.mark.network

SIX_WHEEL = "six-1.16.0-py2.py3-none-any.whl"
SIX_SHA256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
PYPROJECT = """\
[project]
name = "tiny"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["six==1.16.0", "markupsafe==2.1.5; python_version < '3.12'"]

[dependency-groups]
dev = ["pytest"]
"""
LINUX_311 = {
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_version": "",
    "implementation_version": "3.11.9",
}


def index_settings() -> IndexSettings:
    ca = os.environ.get("SSL_CERT_FILE")
    return IndexSettings(ca_bundle=Path(ca) if ca else None)


@pytest.fixture(scope="module")
def uv_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    (project / "pyproject.toml").write_text(PYPROJECT)
    uv = HostUv()
    if not uv.available():
        pytest.fail("uv is not installed on this host (pip install uv)")
    env = uv_environment(os.environ, index_settings(), project.parent / "uv-cache")
    result = uv.run(["lock"], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return project / "uv.lock"


def load(path: Path, groups: Sequence[str] = ()) -> dict[str, LockedPackage]:
    packages = load_locked(
        path,
        kind="uv-lock",
        extras=(),
        groups=groups,
        uv=HostUv(),
        index=index_settings(),
        env=os.environ,
        cache_dir=path.parent.parent / "uv-cache",
    )
    return {p.name: p for p in packages}


def test_uv_lock_exports_the_project_dependencies_without_dev(uv_lock: Path) -> None:
    packages = load(uv_lock)
    assert set(packages) == {"six", "markupsafe"}
    six = packages["six"]
    assert six.version == "1.16.0"
    assert [(w.filename, w.sha256) for w in six.wheels] == [(SIX_WHEEL, SIX_SHA256)]
    markupsafe = packages["markupsafe"]
    assert markupsafe.version == "2.1.5"
    assert applies(markupsafe, LINUX_311)
    assert not applies(markupsafe, {**LINUX_311, "python_full_version": "3.12.1"})


def test_uv_lock_dev_group_when_asked(uv_lock: Path) -> None:
    packages = load(uv_lock, groups=["dev"])
    assert {"six", "markupsafe", "pytest"} <= set(packages)


def test_pypi_simple_api_lists_six_with_its_hash() -> None:
    index = SimpleIndex(["https://pypi.org/simple"], settings=index_settings())
    files = {f.filename: f for f in index.files("six")}
    assert files[SIX_WHEEL].sha256 == SIX_SHA256
    ref = index("six", SIX_WHEEL, SIX_SHA256)
    assert ref.url.startswith("https://files.pythonhosted.org/")
    assert ref.url.endswith("/" + SIX_WHEEL)
