"""Hostile sdists, unpacked by the in-container driver (``nativebuild/drivers/build_wheels.py``, run here on
the host): a member that climbs out with ``..``, an absolute path, a symlink or hard link that
points outside, a device file, a symlink then written through. Each is refused before any byte
lands outside the build directory, and the refusal names the member."""

from __future__ import annotations

import dataclasses
import io
import re
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from nativebuild.drivers import build_wheels as _driver


def _tar(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        setup = b"from setuptools import setup\nsetup()\n"
        info = tarfile.TarInfo("evil-1.0/setup.py")
        info.size = len(setup)
        archive.addfile(info, io.BytesIO(setup))
        add(archive)
    return path


def _file(name: str, data: bytes = b"pwned\n") -> Callable[[tarfile.TarFile], None]:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    return add


def _link(name: str, target: str, kind: bytes) -> Callable[[tarfile.TarFile], None]:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)

    return add


def _device(archive: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("evil-1.0/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    archive.addfile(info)


def _write_through_symlink(archive: tarfile.TarFile) -> None:
    # Read as text, "evil-1.0/b/../../escaped.txt" stays inside; on disk, with b -> ".", its
    # second ".." leaves the build directory.
    _link("evil-1.0/b", ".", tarfile.SYMTYPE)(archive)
    _file("evil-1.0/b/../../escaped.txt")(archive)


@dataclasses.dataclass(frozen=True)
class Hostile:
    add: Callable[[tarfile.TarFile], None]
    member: str  # the member the refusal must name
    escapes_to: Path | None = None  # where a write would land outside, if it happened


def hostile(case: str, tmp_path: Path) -> Hostile:
    """Each case, with any absolute path inside this test's own directory, so nothing a failing
    run writes survives it or meets another run."""
    outside = tmp_path / "escaped-absolute.txt"
    cases = {
        "dotdot": Hostile(
            _file("evil-1.0/../../escaped.txt"), "evil-1.0/../../escaped.txt",
            tmp_path / "escaped.txt",
        ),
        "absolute": Hostile(_file(str(outside)), str(outside), outside),
        "symlink-out": Hostile(
            _link("evil-1.0/link", "../../../etc/passwd", tarfile.SYMTYPE), "evil-1.0/link"
        ),
        "hardlink-out": Hostile(
            _link("evil-1.0/hard", "../outside.txt", tarfile.LNKTYPE), "evil-1.0/hard"
        ),
        "device": Hostile(_device, "evil-1.0/null"),
        "write-through-symlink": Hostile(
            _write_through_symlink, "evil-1.0/b/../../escaped.txt", tmp_path / "escaped.txt"
        ),
    }  # fmt: skip
    return cases[case]


CASES = ("absolute", "device", "dotdot", "hardlink-out", "symlink-out", "write-through-symlink")


@pytest.mark.parametrize("case", CASES)
def test_hostile_tarball_is_refused_and_nothing_escapes(tmp_path: Path, case: str) -> None:
    evil = hostile(case, tmp_path)
    sdist = _tar(tmp_path / "evil-1.0.tar.gz", evil.add)
    build_root = tmp_path / "build" / "evil"
    before = set(tmp_path.rglob("*"))
    with pytest.raises((ValueError, tarfile.TarError)) as refused:
        _driver.unpack(str(sdist), str(build_root))
    assert repr(evil.member) in str(refused.value), "the refusal names the member"
    after = set(tmp_path.rglob("*"))
    inside = {build_root, *build_root.parents}
    escaped = [p for p in after - before if p not in inside and build_root not in p.parents]
    assert escaped == []
    if evil.escapes_to is not None:
        assert not evil.escapes_to.exists()


def test_hostile_zip_sdist_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "evil-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as archive:
        archive.writestr("evil-1.0/setup.py", "")
        archive.writestr("evil-1.0/../../escaped.txt", "pwned")
    with pytest.raises(
        ValueError, match=re.escape("unsafe path in sdist: 'evil-1.0/../../escaped.txt'")
    ):
        _driver.unpack(str(sdist), str(tmp_path / "build" / "evil"))
    assert not (tmp_path / "escaped.txt").exists()


def test_a_well_formed_sdist_unpacks_to_its_top_directory(tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "good-1.0.tar.gz", _file("evil-1.0/pkg/__init__.py", b""))
    root = _driver.unpack(str(sdist), str(tmp_path / "build" / "good"))
    assert Path(root).name == "evil-1.0"
    assert (Path(root) / "pkg" / "__init__.py").is_file()


@pytest.mark.parametrize("case", CASES)
def test_refused_without_tarfile_data_filter_too(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build images with a Python older than tarfile's data filter (3.9.17) are protected by
    the driver's own checks alone."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    evil = hostile(case, tmp_path)
    sdist = _tar(tmp_path / "evil-1.0.tar.gz", evil.add)
    build_root = tmp_path / "build" / "evil"
    with pytest.raises(ValueError, match="in sdist") as refused:
        _driver.unpack(str(sdist), str(build_root))
    assert repr(evil.member) in str(refused.value), "the refusal names the member"
    assert not (tmp_path / "build" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    if evil.escapes_to is not None:
        assert not evil.escapes_to.exists()
