"""Bytecode planning (pure) and the in-container driver (run here with the host's Python)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nativebuild.archive.bytecode import compilable, plan_groups, pyc_path
from nativebuild.archive.plan import ArchiveEntry, plan_archive
from nativebuild.archive.wheels import wheel_owner
from tests.wheelfactory import make_tree, make_wheel

DRIVER = Path(__file__).parents[2] / "nativebuild" / "drivers" / "archive_jobs.py"


@pytest.mark.parametrize(
    ("path", "python", "expected"),
    [
        ("handler.py", "3.9", "__pycache__/handler.cpython-39.pyc"),
        ("python/pkg/mod.py", "3.12", "python/pkg/__pycache__/mod.cpython-312.pyc"),
        ("a/b/__init__.py", "3.14", "a/b/__pycache__/__init__.cpython-314.pyc"),
    ],
)
def test_pyc_path(path: str, python: str, expected: str) -> None:
    assert pyc_path(path, python) == expected


def _entry(path: str) -> ArchiveEntry:
    from nativebuild.archive.plan import SourceFile

    return ArchiveEntry(path=path, mode=0o644, source=SourceFile(path=Path(path)))


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("pkg/mod.py", "", True),
        ("bin/tool.py", "", False),
        ("include/x/gen.py", "", False),
        ("pkg-1.0.dist-info/x.py", "", False),
        ("pkg/data.json", "", False),
        ("python/pkg/mod.py", "python/", True),
        ("share/x/mod.py", "python/", False),  # data of a layer: not importable
    ],
)
def test_what_is_compiled(path: str, prefix: str, expected: bool) -> None:
    assert compilable(_entry(path), importable_prefix=prefix) is expected


def test_group_keys_follow_content_and_location(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "six", "1.16.0", {"six.py": "X = 1\n"})
    src = make_tree(tmp_path / "src", {"handler.py": "import six\n"})
    plan = plan_archive([wheel], src, python="3.9")
    hashes = {wheel: "a" * 64}

    def keys(mount: str = "/var/task", image: str = "sha256:1") -> list[str]:
        groups = plan_groups(
            plan, mount=mount, importable_prefix="", python="3.9", image_id=image,
            wheel_hashes=hashes,
        )  # fmt: skip
        assert [g.label for g in groups] == [wheel.name, "your source"]
        return [g.key for g in groups]

    first = keys()
    assert keys() == first
    assert keys(mount="/opt")[0] != first[0]
    assert keys(image="sha256:2")[0] != first[0]
    (src / "handler.py").write_text("import six  # changed\n")
    changed = keys()
    assert changed[0] == first[0]  # the wheel's group is untouched by a code change
    assert changed[1] != first[1]
    assert wheel_owner(wheel) == "six 1.16.0"


def test_driver_writes_checked_hash_pycs_and_reports_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "in" / "good.py"
    bad = tmp_path / "in" / "bad.py"
    good.parent.mkdir()
    good.write_text("VALUE = {'a', 'b'}\n")
    bad.write_text("print 'python 2'\n")
    jobs = {
        "compile": [
            {
                "src": str(good),
                "out": str(tmp_path / "out" / "g.pyc"),
                "dfile": "/opt/python/good.py",
            },
            {
                "src": str(bad),
                "out": str(tmp_path / "out" / "b.pyc"),
                "dfile": "/opt/python/bad.py",
            },
        ]
    }
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path / "jobs.json"), str(tmp_path / "results.json")],
        check=True, env={"PYTHONHASHSEED": "0"},
    )  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["compiled"] == [str(tmp_path / "out" / "g.pyc")]
    assert [f["src"] for f in results["compile_failed"]] == ["/opt/python/bad.py"]
    data = (tmp_path / "out" / "g.pyc").read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
    assert data[8:16] == importlib.util.source_hash(good.read_bytes())
    assert b"/opt/python/good.py" in data  # the path tracebacks show in Lambda
