"""Git repositories made by a test, with the real git: commits, branches, tags, clones."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

from tests.wheelfactory import make_tree

_IDENTITY = {
    "GIT_AUTHOR_NAME": "nativebuild tests",
    "GIT_AUTHOR_EMAIL": "tests@nativebuild.invalid",
    "GIT_COMMITTER_NAME": "nativebuild tests",
    "GIT_COMMITTER_EMAIL": "tests@nativebuild.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **_IDENTITY}, capture_output=True,
        text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def project_files(name: str, version: str, marker: str = "1") -> dict[str, str | bytes]:
    """A pure-Python project with static metadata (setuptools)."""
    module = name.replace("-", "_")
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ),
        f"{module}/__init__.py": f"MARKER = {marker!r}\n",
    }


def make_repo(path: Path, files: Mapping[str, str | bytes], *, branch: str = "main") -> str:
    """A repository at ``path`` (a work tree) with ``files`` committed on ``branch``; the
    commit id."""
    path.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch", branch, cwd=path)
    return commit(path, files, "first")


def commit(repo: Path, files: Mapping[str, str | bytes], message: str) -> str:
    make_tree(repo, dict(files))
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "--message", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def bare_clone(repo: Path, dest: Path) -> Path:
    """A bare copy of ``repo`` (what a server serves), with the files a dumb HTTP server needs."""
    git("clone", "--quiet", "--bare", str(repo), str(dest))
    git("update-server-info", cwd=dest)
    return dest


def extension_files(name: str, version: str, factor: int) -> dict[str, str | bytes]:
    """A project with one C extension module, ``<module>.scale(x)`` returning ``factor * x``:
    what must be compiled in the build image."""
    module = name.replace("-", "_")
    c_source = (
        "#include <Python.h>\n"
        "static PyObject *scale(PyObject *self, PyObject *arg) {\n"
        f"  return PyLong_FromLong({factor} * PyLong_AsLong(arg)); }}\n"
        'static PyMethodDef methods[] = {{"scale", scale, METH_O, NULL}, {NULL, NULL, 0, NULL}};\n'
        f'static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};\n'
        f"PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&module); }}\n"
    )
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ),
        "setup.py": (
            "from setuptools import Extension, setup\n"
            f"setup(ext_modules=[Extension({module!r}, ['src/{module}.c'])])\n"
        ),
        f"src/{module}.c": c_source,
    }


def sdist_of(files: dict[str, str | bytes], name: str, version: str, dest: Path) -> Path:
    """``files`` as the sdist ``<name>-<version>.tar.gz`` in ``dest`` (with a PKG-INFO)."""
    stem = f"{name.replace('-', '_')}-{version}"
    members = {**files, "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"}
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, content in sorted(members.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{stem}/{member}")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return path
