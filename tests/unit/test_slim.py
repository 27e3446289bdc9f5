"""Slimming decisions: what each opt-in rule removes, what it never removes, and why."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from nativebuild.archive.plan import ArchiveEntry, ArchivePlan, SourceFile, WheelMember
from nativebuild.archive.slim import (
    RULES,
    SlimOptions,
    compile_glob,
    parse_rules,
    runtime_packages,
    slim_plan,
    summarize,
)
from nativebuild.archive.strip import is_shared_object, rewrite_wheel
from nativebuild.errors import ConfigError
from nativebuild.targets import runtimes
from tests.wheelfactory import make_wheel


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pyi", "pkg/sub/mod.pyi", True),
        ("*.pyi", "pkg/sub/mod.py", False),
        ("tests", "pkg/tests/test_a.py", True),
        ("tests", "pkg/tests", True),
        ("tests/", "pkg/tests", False),  # a file called tests: not a directory
        ("tests/", "pkg/tests/x.py", True),
        ("botocore/data/ec2", "botocore/data/ec2/2016/service-2.json", True),
        ("botocore/data/ec2", "x/botocore/data/ec2/a.json", False),  # with a slash: anchored
        ("botocore/data/*/2015-*/**", "botocore/data/ec2/2015-10-01/paginators-1.json", True),
        ("botocore/data/*/2015-*/**", "botocore/data/ec2/2016-11-15/paginators-1.json", False),
        ("**/README*", "a/b/README.md", True),
        ("**/README*", "README", True),
        ("pkg/?.txt", "pkg/a.txt", True),
        ("pkg/?.txt", "pkg/ab.txt", False),
        ("pkg/[ab].txt", "pkg/b.txt", True),
        ("pkg/[!ab].txt", "pkg/b.txt", False),
        ("pkg/*.so", "pkg/sub/x.so", False),  # * stays within one directory
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern)(path) is expected


@pytest.mark.parametrize("pattern", ["", "/", " ", ".", "../"])
def test_meaningless_globs_are_refused(pattern: str) -> None:
    with pytest.raises(ConfigError):
        compile_glob(pattern)


def test_rules_parse() -> None:
    assert parse_rules(["tests", "docs,strip"], "cli") == ("tests", "docs", "strip")
    assert parse_rules("all", "env") == RULES
    assert parse_rules(["TESTS", "tests", ""], "cli") == ("tests",)
    with pytest.raises(ConfigError, match="Unknown slim rule 'debug'"):
        parse_rules(["debug"], "cli")


def test_every_runtime_lists_the_sdk_it_ships() -> None:
    for name in runtimes():
        assert {
            "boto3",
            "botocore",
            "s3transfer",
            "jmespath",
            "python-dateutil",
            "six",
            "urllib3",
        } <= (runtime_packages(name)), name
    assert runtime_packages("python2.7") == frozenset()


def entry(path: str, owner: str = "numpy 2.0.1", size: int = 100) -> ArchiveEntry:
    source = (
        SourceFile(path=Path("/src") / path)
        if not owner
        else WheelMember(wheel=Path("w.whl"), member=path, rewrite_shebang=False)
    )
    return ArchiveEntry(path=path, mode=0o644, source=source, owner=owner, size=size)


PLAN = ArchivePlan(
    entries=(
        entry("numpy-2.0.1.dist-info/METADATA"),
        entry("numpy-2.0.1.dist-info/top_level.txt"),
        entry("numpy-2.0.1.dist-info/docs/LICENSE.txt"),
        entry("numpy/__init__.py"),
        entry("numpy/core/tests/test_core.py", size=5000),
        entry("numpy/core/tests/data/x.npy", size=7000),
        entry("numpy/doc/ufuncs.py", size=300),
        entry("numpy/docs/index.txt", size=300),
        entry("numpy/examples/demo.py", size=200),
        entry("numpy/testing/__init__.py"),  # a public module, not a test suite
        entry("numpy/core/_multiarray.pyi"),
        entry("tests/conftest.py", owner="", size=10),  # your own tests stay
        entry("handler.py", owner="", size=10),
        entry("notes.txt", owner="", size=10),
    ),
    interpreter="/var/lang/bin/python3.12",
)


def paths(plan: ArchivePlan) -> set[str]:
    return {e.path for e in plan.entries}


def test_no_options_change_nothing() -> None:
    result = slim_plan(PLAN, SlimOptions())
    assert result.plan == PLAN
    assert result.removed == ()


def test_tests_docs_examples_drop_dependency_directories_only() -> None:
    result = slim_plan(PLAN, SlimOptions(rules=frozenset({"tests", "docs", "examples"})))
    removed = {r.path: r.reason for r in result.removed}
    assert removed == {
        "numpy/core/tests/test_core.py": "tests",
        "numpy/core/tests/data/x.npy": "tests",
        "numpy/doc/ufuncs.py": "docs",
        "numpy/docs/index.txt": "docs",
        "numpy/examples/demo.py": "examples",
    }
    kept = paths(result.plan)
    assert "tests/conftest.py" in kept
    assert "numpy/testing/__init__.py" in kept
    assert "numpy-2.0.1.dist-info/docs/LICENSE.txt" in kept  # never inside .dist-info
    assert sum(r.size for r in result.removed) == 12_800


def test_exclude_globs_apply_to_your_source_but_never_to_dist_info() -> None:
    result = slim_plan(PLAN, SlimOptions(exclude=("*.txt", "*.pyi")))
    removed = {r.path for r in result.removed}
    assert removed == {"numpy/docs/index.txt", "notes.txt", "numpy/core/_multiarray.pyi"}
    assert "numpy-2.0.1.dist-info/top_level.txt" in paths(result.plan)
    assert {r.reason for r in result.removed} == {"exclude *.txt", "exclude *.pyi"}


def test_include_wins_over_rules_and_excludes() -> None:
    options = SlimOptions(
        rules=frozenset({"tests"}),
        exclude=("*.txt",),
        include=("numpy/core/tests/data/**", "notes.txt"),
    )
    kept = paths(slim_plan(PLAN, options).plan)
    assert "numpy/core/tests/data/x.npy" in kept
    assert "numpy/core/tests/test_core.py" not in kept
    assert "notes.txt" in kept
    assert "numpy/docs/index.txt" not in kept


def test_globs_are_relative_to_the_layer_site_directory() -> None:
    layer = ArchivePlan(
        entries=(
            entry("lib/libx.so.1"),
            entry("python/numpy/docs/index.txt"),
            entry("python/numpy/__init__.py"),
        ),
        interpreter="/x",
    )
    result = slim_plan(layer, SlimOptions(exclude=("numpy/docs",)), site_prefix="python/")
    assert [r.path for r in result.removed] == ["python/numpy/docs/index.txt"]
    result = slim_plan(layer, SlimOptions(exclude=("lib/*.so.1",)), site_prefix="python/")
    assert [r.path for r in result.removed] == ["lib/libx.so.1"]


SDK = ArchivePlan(
    entries=(
        entry("boto3-1.35.0.dist-info/METADATA", owner="boto3 1.35.0"),
        entry("boto3/__init__.py", owner="boto3 1.35.0", size=1000),
        entry("botocore-1.35.0.dist-info/RECORD", owner="botocore 1.35.0"),
        entry("botocore/data/ec2/service-2.json", owner="botocore 1.35.0", size=9000),
        entry("dateutil/tz.py", owner="python-dateutil 2.9.0"),
        entry("requests/__init__.py", owner="requests 2.32.0"),
    ),
    interpreter="/x",
)


def test_runtime_provided_drops_whole_distributions_with_their_metadata() -> None:
    result = slim_plan(
        SDK,
        SlimOptions(rules=frozenset({"runtime-provided"})),
        runtime_provided=runtime_packages("python3.12"),
    )
    assert paths(result.plan) == {"requests/__init__.py"}
    assert {r.reason for r in result.removed} == {"runtime-provided"}
    assert summarize(result.removed)[0] == (
        "removed 2 files (9,100 bytes) of botocore 1.35.0: runtime-provided"
    )


def test_an_include_keeps_a_runtime_provided_distribution_whole() -> None:
    result = slim_plan(
        SDK,
        SlimOptions(rules=frozenset({"runtime-provided"}), include=("boto3",)),
        runtime_provided=runtime_packages("python3.12"),
    )
    kept = paths(result.plan)
    assert {"boto3/__init__.py", "boto3-1.35.0.dist-info/METADATA"} <= kept
    assert "botocore/data/ec2/service-2.json" not in kept


def test_summary_groups_by_package_and_reason_largest_first() -> None:
    result = slim_plan(PLAN, SlimOptions(rules=frozenset({"tests", "docs"}), exclude=("*.txt",)))
    lines = summarize(result.removed)
    assert lines[0] == "removed 2 files (12,000 bytes) of numpy 2.0.1: tests"
    assert "removed 1 files (10 bytes) of your source: exclude *.txt" in lines


# --- strip: what is touched, and the wheel it makes ------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/_x.so", True), ("a/libz.so.1.2", True), ("a/_x.cpython-39-x86_64-linux-gnu.so", True),
     ("a/x.py", False), ("a/sonar.txt", False), ("a.so.d/x.txt", False)],
)  # fmt: skip
def test_shared_object_names(name: str, expected: bool) -> None:
    assert is_shared_object(name) is expected


def test_rewritten_wheel_has_the_new_bytes_and_a_matching_record(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in", "fast", "1.0",
        {"fast/__init__.py": "", "fast/_c.so": b"\x7fELF" + b"\x00" * 4000},
        tag="cp39-cp39-linux_x86_64",
    )  # fmt: skip
    out = tmp_path / "out" / wheel.name
    out.parent.mkdir()
    rewrite_wheel(wheel, {"fast/_c.so": b"\x7fELF small"}, out)
    with zipfile.ZipFile(out) as archive, zipfile.ZipFile(wheel) as before:
        assert archive.read("fast/_c.so") == b"\x7fELF small"
        assert archive.read("fast/__init__.py") == before.read("fast/__init__.py")
        assert archive.namelist() == before.namelist()
        rows = {
            r[0]: r
            for r in csv.reader(io.StringIO(archive.read("fast-1.0.dist-info/RECORD").decode()))
        }
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"\x7fELF small").digest()).rstrip(b"=")
    assert rows["fast/_c.so"][1:] == ["sha256=" + digest.decode(), "10"]
