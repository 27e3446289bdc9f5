"""An installed (non-editable) nativebuild carries its build image recipe.

The recipe lives once, in the checkout's top-level ``build-images/``; setup.py copies it into
the wheel as ``nativebuild/resources/build-images`` and MANIFEST.in puts it in the sdist. The
wheels here are built for real, as ``pip install .`` does (straight from the tree) and as a
release does (``python -m build``: sdist, then the wheel from the sdist), and the recipe that
nativebuild finds in them must hash like the checkout's.

Builds run on a copy of the packaging inputs, never in the checkout: an in-tree build writes
``build/`` there, and a stale ``build/lib`` would put the recipe in a wheel even without the hook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from nativebuild.engine import build_images as images

ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = ROOT / "build-images"
PACKAGED = "nativebuild/resources/build-images"
# What the build reads: pyproject.toml names README.md as the readme.
PACKAGING_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
PACKAGE_TREES = ("nativebuild", "build-images")
PIP = (sys.executable, "-m", "pip")  # with this machine's pip settings (indexes, constraints)
TIMEOUT = 600


def run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


def checkout_files() -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for path in sorted(RECIPE_DIR.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }


def packaged_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(f"{PACKAGED}/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith(f"{PACKAGED}/")
        }


def only_wheel(directory: Path) -> Path:
    wheels = sorted(directory.glob("nativebuild-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def copy_source(dest: Path) -> Path:
    """A fresh copy of what the build reads (whatever of it exists: a missing setup.py or
    MANIFEST.in must make the assertions fail, not the copy)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")
    for name in PACKAGE_TREES:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in PACKAGING_INPUTS:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def tree_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel that ``pip install .`` builds and installs."""
    work = tmp_path_factory.mktemp("tree")
    tree = copy_source(work / "src")
    run(*PIP, "wheel", "--no-deps", "-w", work / "dist", tree, cwd=work)
    return only_wheel(work / "dist")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``'s sdist and wheel (from that sdist), in one directory."""
    work = tmp_path_factory.mktemp("release")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=work)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "build", cwd=work)
    tree = copy_source(work / "src")
    run(python, "-m", "build", "--outdir", work / "dist", tree, cwd=work)
    return work / "dist"


def installed_recipe(wheel: Path, dest: Path) -> dict[str, str]:
    """Where nativebuild, installed from ``wheel`` alone, finds its recipe, and its digest."""
    run(*PIP, "install", "--no-deps", "--target", dest, wheel, cwd=wheel.parent)
    probe = (
        "import json, nativebuild, nativebuild.engine.build_images as i; "
        "print(json.dumps({'package': nativebuild.__file__, 'dir': str(i.recipe_dir()), "
        "'digest': i.Recipe.load().digest()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(dest)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, str] = json.loads(done.stdout)
    return found


def assert_wheel_carries_the_recipe(wheel: Path, tmp_path: Path) -> None:
    packaged = packaged_files(wheel)
    assert set(images.RECIPE_FILES) <= set(packaged), (
        f"{wheel.name} lacks the build image recipe under {PACKAGED}/: {sorted(packaged)}"
    )
    assert packaged == checkout_files()  # byte for byte, and nothing else

    found = installed_recipe(wheel, tmp_path / "site")
    site = (tmp_path / "site").resolve()
    assert Path(found["package"]).resolve().is_relative_to(site)
    assert Path(found["dir"]).resolve() == site / PACKAGED
    assert found["digest"] == images.Recipe.load(RECIPE_DIR).digest()


def test_a_wheel_built_from_the_tree_carries_the_recipe(tree_wheel: Path, tmp_path: Path) -> None:
    assert_wheel_carries_the_recipe(tree_wheel, tmp_path)


def test_the_sdist_carries_the_recipe_and_its_wheel_too(release: Path, tmp_path: Path) -> None:
    sdists = sorted(release.glob("nativebuild-*.tar.gz"))
    assert len(sdists) == 1, sdists
    with tarfile.open(sdists[0]) as archive:
        names = {
            Path(name).relative_to(Path(name).parts[0]).as_posix() for name in archive.getnames()
        }
    assert {f"build-images/{name}" for name in checkout_files()} <= names
    assert not any(name.startswith(PACKAGED) for name in names)  # one copy, at the top
    assert_wheel_carries_the_recipe(only_wheel(release), tmp_path)
