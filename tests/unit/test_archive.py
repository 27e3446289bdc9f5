"""Planning rules of nativebuild.archive.plan / nativebuild.archive.wheels, on real wheels and trees."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from nativebuild.archive.plan import (
    ArchiveEntry,
    ArchivePlan,
    SourceFile,
    WheelMember,
    is_excluded,
    plan_function_archive,
    source_date_epoch,
    zip_datetime,
)
from nativebuild.archive.wheels import install_path, rewrite_shebang, unsafe_reason, wheel_files
from nativebuild.errors import ArchiveError, ConfigError
from tests.wheelfactory import RawMember, make_tree, make_wheel, symlink_member


def paths(plan: ArchivePlan) -> list[str]:
    return [entry.path for entry in plan.entries]


def entry(plan: ArchivePlan, path: str) -> ArchiveEntry:
    (found,) = (e for e in plan.entries if e.path == path)
    return found


# --- wheel layout ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("pkg/__init__.py", ("pkg/__init__.py", False)),
        ("top.py", ("top.py", False)),
        ("demo-1.0.dist-info/METADATA", ("demo-1.0.dist-info/METADATA", False)),
        ("demo-1.0.data/purelib/pkg/a.py", ("pkg/a.py", False)),
        ("demo-1.0.data/platlib/pkg/_c.so", ("pkg/_c.so", False)),
        ("demo-1.0.data/scripts/demo-cli", ("bin/demo-cli", True)),
        ("demo-1.0.data/data/share/demo.txt", ("share/demo.txt", False)),
        ("demo-1.0.data/headers/demo.h", ("include/demo/demo.h", False)),
        ("other-2.0.data/purelib/x.py", ("other-2.0.data/purelib/x.py", False)),
    ],
)
def test_install_path_maps_data_directories(member: str, expected: tuple[str, bool]) -> None:
    assert install_path(member, data_dir="demo-1.0.data", dist_name="demo") == expected


@pytest.mark.parametrize("member", ["demo-1.0.data/lib/x.py", "demo-1.0.data/scripts"])
def test_install_path_refuses_unknown_data_key(member: str) -> None:
    with pytest.raises(ArchiveError, match="directories a wheel may use"):
        install_path(member, data_dir="demo-1.0.data", dist_name="demo")


def test_plan_installs_wheel_like_pip_target(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "Demo-Pkg",
        "1.0",
        {"demo_pkg/__init__.py": "x = 1\n"},
        data_files={
            "purelib/demo_pkg/extra.py": "",
            "platlib/demo_pkg/_speed.so": b"\x7fELF",
            "scripts/demo": "#!python\nprint(1)\n",
            "data/share/demo/doc.txt": "doc",
            "headers/demo.h": "int x;",
        },
        dist_info={"entry_points.txt": "[console_scripts]\ndemo = demo_pkg:main\n"},
        directory_entries=True,
    )
    plan = plan_function_archive([wheel], None, python="3.12")
    info = "demo_pkg-1.0.dist-info"
    assert paths(plan) == [
        "bin/demo",
        "demo_pkg-1.0.dist-info/METADATA",
        "demo_pkg-1.0.dist-info/RECORD",
        "demo_pkg-1.0.dist-info/WHEEL",
        "demo_pkg-1.0.dist-info/entry_points.txt",
        "demo_pkg/__init__.py",
        "demo_pkg/_speed.so",
        "demo_pkg/extra.py",
        "include/demo_pkg/demo.h",
        "share/demo/doc.txt",
    ]
    assert not any(p.endswith(("INSTALLER", "REQUESTED", "direct_url.json")) for p in paths(plan))
    assert entry(plan, "bin/demo").source == WheelMember(
        wheel=wheel, member="demo_pkg-1.0.data/scripts/demo", rewrite_shebang=True
    )
    assert entry(plan, "bin/demo").mode == 0o755
    assert entry(plan, f"{info}/RECORD").source == WheelMember(
        wheel=wheel, member=f"{info}/RECORD", rewrite_shebang=False
    )
    assert plan.interpreter == "/var/lang/bin/python3.12"


@pytest.mark.parametrize(
    ("mode", "expected"), [(0o644, 0o644), (0o600, 0o644), (0o775, 0o755), (0o700, 0o755)]
)
def test_wheel_member_mode_normalised(tmp_path: Path, mode: int, expected: int) -> None:
    wheel = make_wheel(
        tmp_path, "demo", "1.0", {"demo/tool": "x"}, executable={"demo/tool"}, exec_mode=mode
    )
    plan = plan_function_archive([wheel], None, python="3.12")
    assert entry(plan, "demo/tool").mode == expected


def test_script_is_executable_even_without_exec_bits(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", {}, data_files={"scripts/run": "#!/bin/sh\n"})
    assert entry(plan_function_archive([wheel], None, python="3.9"), "bin/run").mode == 0o755


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/evil.py", "drive letter"),
        ("c:evil.py", "drive letter"),
        ("../evil.py", "'..'"),
        ("pkg/../../evil.py", "'..'"),
        ("pkg\\evil.py", "backslash"),
        ("pkg//evil.py", "empty"),
        ("./evil.py", "empty or '.'"),
    ],
)
def test_unsafe_member_names_refused(tmp_path: Path, name: str, reason: str) -> None:
    assert reason in (unsafe_reason(name) or "")
    wheel = make_wheel(tmp_path, "demo", "1.0", {}, raw_members=[RawMember(name=name)])
    with pytest.raises(ArchiveError) as caught:
        plan_function_archive([wheel], None, python="3.12")
    assert wheel.name in str(caught.value)
    assert repr(name) in str(caught.value)


def test_symlink_member_refused(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path, "demo", "1.0", {}, raw_members=[symlink_member("demo/link", "/etc/passwd")]
    )
    with pytest.raises(ArchiveError, match=r"demo-1\.0-py3-none-any\.whl.*'demo/link'.*symbolic"):
        plan_function_archive([wheel], None, python="3.12")


@pytest.mark.parametrize(
    "safe", ["pkg/a.py", "pkg/sub/", "a..b/c..py", "demo-1.0.dist-info/RECORD"]
)
def test_safe_names_accepted(safe: str) -> None:
    assert unsafe_reason(safe) is None


def test_wheel_without_dist_info_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bogus, "w") as zf:
        zf.writestr("pkg/a.py", "")
    with pytest.raises(ArchiveError, match=r"bogus-1\.0.*exactly one top-level \.dist-info"):
        plan_function_archive([bogus], None, python="3.12")


def test_not_a_zip_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="Cannot read wheel"):
        plan_function_archive([broken], None, python="3.12")


# --- conflicts ---------------------------------------------------------------------------------


def test_conflicting_wheels_refused(tmp_path: Path) -> None:
    one = make_wheel(tmp_path, "one", "1.0", {"shared/util.py": "a = 1\n"})
    two = make_wheel(tmp_path, "two", "2.0", {"shared/util.py": "a = 2\n"})
    with pytest.raises(ArchiveError) as caught:
        plan_function_archive([one, two], None, python="3.12")
    message = str(caught.value)
    assert one.name in message
    assert two.name in message
    assert "shared/util.py" in message


def test_identical_duplicates_kept_once(tmp_path: Path) -> None:
    one = make_wheel(tmp_path, "one", "1.0", {"ns/__init__.py": "", "ns/one.py": ""})
    two = make_wheel(
        tmp_path,
        "two",
        "2.0",
        {"ns/__init__.py": "", "ns/two.py": ""},
        executable={"ns/__init__.py"},
    )
    forward = plan_function_archive([one, two], None, python="3.12")
    backward = plan_function_archive([two, one], None, python="3.12")
    assert paths(forward).count("ns/__init__.py") == 1
    assert {"ns/one.py", "ns/two.py"} <= set(paths(forward))
    # Executable if either copy is; the plan does not depend on the wheel order.
    assert entry(forward, "ns/__init__.py").mode == 0o755
    assert forward == backward


def test_member_twice_in_one_wheel_with_different_bytes_refused(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "demo",
        "1.0",
        {"demo/a.py": "old"},
        data_files={"purelib/demo/a.py": "new"},
    )
    with pytest.raises(ArchiveError, match=r"installs demo/a\.py twice"):
        plan_function_archive([wheel], None, python="3.12")


def test_source_colliding_with_wheel_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "requests", "2.31.0", {"requests/__init__.py": ""})
    src = make_tree(tmp_path / "src", {"requests/__init__.py": "", "app.py": ""})
    with pytest.raises(ArchiveError) as caught:
        plan_function_archive([wheel], src, python="3.12")
    assert "your source has requests/__init__.py" in str(caught.value).lower()
    assert wheel.name in str(caught.value)


def test_file_and_directory_with_same_path_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "lib", "1.0", {"lib/core.py": ""})
    src = make_tree(tmp_path / "src", {"lib": "I am a file"})
    with pytest.raises(ArchiveError, match=r"lib is a file in your source but a directory"):
        plan_function_archive([wheel], src, python="3.12")


# --- source tree -------------------------------------------------------------------------------


def test_source_exclusions(tmp_path: Path) -> None:
    src = make_tree(
        tmp_path / "src",
        {
            "handler.py": "",
            "pkg/__init__.py": "",
            "pkg/__pycache__/x.cpython-312.pyc": "",
            "pkg/stale.pyc": "",
            "pkg/opt.pyo": "",
            ".git/HEAD": "",
            ".hg/store": "",
            ".svn/entries": "",
            ".DS_Store": "",
            "pkg/.DS_Store": "",
            ".venv/bin/python": "",
            ".mypy_cache/x": "",
            ".pytest_cache/x": "",
            ".ruff_cache/x": "",
            "app.egg-info/PKG-INFO": "",
            ".env.example": "",
            "data/pyc.txt": "",
        },
    )
    plan = plan_function_archive([], src, python="3.12")
    assert paths(plan) == [".env.example", "data/pyc.txt", "handler.py", "pkg/__init__.py"]
    assert entry(plan, "handler.py").source == SourceFile(path=(src / "handler.py").resolve())


@pytest.mark.parametrize(
    ("name", "excluded"),
    [("__pycache__", True), ("a.pyc", True), ("x.egg-info", True), ("a.py", False), ("git", False)],
)
def test_is_excluded(name: str, excluded: bool) -> None:
    assert is_excluded(name) is excluded


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o644, 0o644),
        (0o600, 0o644),
        (0o664, 0o644),
        (0o700, 0o755),
        (0o744, 0o755),
        (0o611, 0o644),
    ],
)
def test_source_mode_follows_owner_exec_bit(tmp_path: Path, mode: int, expected: int) -> None:
    src = make_tree(tmp_path / "src", {"run.sh": ""}, executable={"run.sh"}, exec_mode=mode)
    assert plan_function_archive([], src, python="3.12").entries[0].mode == expected


def test_source_file_symlinks_materialised(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "shared", {"config.json": "{}"})
    src = make_tree(
        tmp_path / "src",
        {"real.py": ""},
        symlinks={"alias.py": "real.py", "config.json": str(outside / "config.json")},
    )
    plan = plan_function_archive([], src, python="3.12")
    assert paths(plan) == ["alias.py", "config.json", "real.py"]
    assert entry(plan, "alias.py").source == SourceFile(path=(src / "real.py").resolve())
    assert entry(plan, "config.json").source == SourceFile(path=(outside / "config.json").resolve())


def test_source_directory_symlink_inside_followed(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"vendor/lib/mod.py": ""}, symlinks={"lib": "vendor/lib"})
    assert paths(plan_function_archive([], src, python="3.12")) == [
        "lib/mod.py",
        "vendor/lib/mod.py",
    ]


@pytest.mark.parametrize(
    ("links", "match"),
    [
        ({"gone.py": "missing.py"}, "broken"),
        ({"loop_a": "loop_b", "loop_b": "loop_a"}, "broken or looping"),
        ({"pkg/up": ".."}, "loop"),
        ({"ext": "OUTSIDE"}, "directory outside"),
    ],
)
def test_bad_source_symlinks_refused(tmp_path: Path, links: dict[str, str], match: str) -> None:
    outside = make_tree(tmp_path / "outside", {"x.py": ""})
    links = {k: str(outside) if v == "OUTSIDE" else v for k, v in links.items()}
    src = make_tree(tmp_path / "src", {"pkg/__init__.py": ""}, symlinks=links)
    with pytest.raises(ArchiveError, match=match) as caught:
        plan_function_archive([], src, python="3.12")
    assert str(src / next(iter(links))) in str(caught.value)


def test_excluded_symlink_not_followed(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"app.py": ""}, symlinks={".venv": "/nonexistent/venv"})
    assert paths(plan_function_archive([], src, python="3.12")) == ["app.py"]


def test_special_file_refused(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"app.py": ""})
    os.mkfifo(src / "pipe")
    with pytest.raises(ArchiveError, match="not a regular file"):
        plan_function_archive([], src, python="3.12")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_source_directory_refused(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "src"
    if kind == "file":
        src.write_text("")
    with pytest.raises(ArchiveError, match="does not exist" if kind == "missing" else "not a dir"):
        plan_function_archive([], src, python="3.12")


def test_source_directory_itself_a_symlink(tmp_path: Path) -> None:
    real = make_tree(tmp_path / "real", {"app.py": ""})
    link = tmp_path / "link"
    link.symlink_to(real)
    assert paths(plan_function_archive([], link, python="3.12")) == ["app.py"]


def test_bad_python_version_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"3\.MINOR"):
        plan_function_archive([], None, python="python3.12")


# --- shebangs and timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (b"#!python\nimport x\n", b"#!/var/lang/bin/python3.11\nimport x\n"),
        (b"#!pythonw\n", b"#!/var/lang/bin/python3.11\n"),
        (b"#!python -u\r\nx\n", b"#!/var/lang/bin/python3.11 -u\r\nx\n"),
        (b"#!python", b"#!/var/lang/bin/python3.11"),
        (b"#!python3\n", b"#!python3\n"),
        (b"#!/bin/sh\n#!python\n", b"#!/bin/sh\n#!python\n"),
        (b"\x7fELF#!python", b"\x7fELF#!python"),
        (b"", b""),
    ],
)
def test_rewrite_shebang(script: bytes, expected: bytes) -> None:
    assert rewrite_shebang(script, "/var/lang/bin/python3.11") == expected


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (None, (1980, 1, 1, 0, 0, 0)),
        (0, (1980, 1, 1, 0, 0, 0)),
        (-86400, (1980, 1, 1, 0, 0, 0)),
        (315532799, (1980, 1, 1, 0, 0, 0)),
        (315532800, (1980, 1, 1, 0, 0, 0)),
        (315532801, (1980, 1, 1, 0, 0, 1)),
        (1700000000, (2023, 11, 14, 22, 13, 20)),
        (4354819199, (2107, 12, 31, 23, 59, 59)),
        (4354819200, (2107, 12, 31, 23, 59, 59)),
        (2**63, (2107, 12, 31, 23, 59, 59)),
    ],
)
def test_zip_datetime_clamped_utc(epoch: int | None, expected: tuple[int, ...]) -> None:
    assert zip_datetime(epoch) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SOURCE_DATE_EPOCH": ""}, None),
        ({"SOURCE_DATE_EPOCH": "1700000000"}, 1700000000),
        ({"SOURCE_DATE_EPOCH": " 1700000000\n"}, 1700000000),
        ({"SOURCE_DATE_EPOCH": "0"}, 0),
        ({"SOURCE_DATE_EPOCH": "-5"}, -5),
    ],
)
def test_source_date_epoch_parsed(env: dict[str, str], expected: int | None) -> None:
    assert source_date_epoch(env) == expected


@pytest.mark.parametrize("value", ["abc", "1.5", "1_000", "+5", "1e9", "١٢٣", "12 34"])
def test_source_date_epoch_invalid(value: str) -> None:
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH") as caught:
        source_date_epoch({"SOURCE_DATE_EPOCH": value})
    assert caught.value.exit_code == ConfigError.exit_code


# --- exact refusals and the files of one wheel (mutation run) ----------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("C:/evil.py", "starts with a drive letter"),
        ("pkg/../evil.py", "has a '..' component"),
        ("pkg\\evil.py", "contains a backslash"),
        ("pkg/./evil.py", "has an empty or '.' component"),
        ("X", None),  # a trailing "X" is not a separator
        ("pkg/sub/", None),
    ],
)
def test_unsafe_reasons_word_for_word(name: str, reason: str | None) -> None:
    assert unsafe_reason(name) == reason


def test_an_unsafe_member_is_refused_naming_wheel_member_and_reason(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", {}, raw_members=[RawMember(name="../evil.py")])
    with pytest.raises(ArchiveError) as caught:
        wheel_files(wheel)
    assert str(caught.value) == (
        "Wheel demo-1.0-py3-none-any.whl has a member '../evil.py' that has a '..' component; "
        "refusing to install it."
    )
    assert caught.value.hint == "Only install wheels from sources you trust."


def test_dist_info_refusals_say_what_was_found(tmp_path: Path) -> None:
    none = tmp_path / "bogus-1.0-py3-none-any.whl"
    with zipfile.ZipFile(none, "w") as zf:
        zf.writestr("pkg/a.py", "")
        zf.writestr("pkg/x.dist-info/f", "")  # nested: not a top-level .dist-info
    with pytest.raises(ArchiveError) as caught:
        wheel_files(none)
    assert str(caught.value) == (
        "Wheel bogus-1.0-py3-none-any.whl must have exactly one top-level .dist-info "
        "directory, found no .dist-info directory."
    )
    assert caught.value.hint == "The file is not a valid wheel; rebuild or re-download it."
    two = tmp_path / "two-1.0-py3-none-any.whl"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a-1.0.dist-info/RECORD", "")
        zf.writestr("b-1.0.dist-info/RECORD", "")
    with pytest.raises(ArchiveError, match=r"found 2: a-1\.0\.dist-info, b-1\.0\.dist-info\.$"):
        wheel_files(two)


def test_a_nested_dist_info_directory_is_just_a_directory(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", {"demo/vendored.dist-info/METADATA": "x"})
    assert "demo/vendored.dist-info/METADATA" in [f.path for f in wheel_files(wheel)]


def test_an_unreadable_wheel_says_to_fetch_it_again(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError) as caught:
        wheel_files(broken)
    assert caught.value.hint == "Delete the file so it is downloaded or built again."


def test_an_unknown_data_directory_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", {}, data_files={"lib/x.py": ""})
    with pytest.raises(ArchiveError) as caught:
        wheel_files(wheel)
    assert str(caught.value) == (
        "Wheel demo-1.0-py3-none-any.whl: 'demo-1.0.data/lib/x.py' is not in one of the "
        "demo-1.0.data/ directories a wheel may use (data, headers, platlib, purelib, scripts)."
    )
    assert caught.value.hint == "The file is not a valid wheel."
    twice = make_wheel(
        tmp_path / "t", "demo", "1.0", {"demo/a.py": "old"}, data_files={"purelib/demo/a.py": "new"}
    )
    with pytest.raises(ArchiveError, match="twice") as caught:
        wheel_files(twice)
    assert caught.value.hint == "The file is not a valid wheel."


@pytest.mark.parametrize(("mode", "expected"), [(0o601, 0o755), (0o602, 0o644), (0o610, 0o755)])
def test_any_execute_bit_of_a_member_makes_it_executable(
    tmp_path: Path, mode: int, expected: int
) -> None:
    wheel = make_wheel(
        tmp_path,
        "demo",
        "1.0",
        {},
        raw_members=[RawMember(name="demo/tool", data=b"x", mode=0o100000 | mode)],
    )
    (tool,) = [f for f in wheel_files(wheel) if f.path == "demo/tool"]
    assert (tool.mode, tool.size) == (expected, 1)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # the point of the test
def test_one_member_twice_with_the_same_bytes_is_one_file_executable_if_either_is(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(
        tmp_path, "demo", "1.0", {},
        raw_members=[
            RawMember(name="demo/tool", data=b"same", mode=0o100755), RawMember(name="demo/tool", data=b"same", mode=0o100644),
        ],
    )  # fmt: skip
    (tool,) = [f for f in wheel_files(wheel) if f.path == "demo/tool"]
    assert tool.mode == 0o755
    assert tool.source.member == "demo/tool"
    reverse = make_wheel(
        tmp_path / "r", "demo", "1.0", {},
        raw_members=[
            RawMember(name="demo/tool", data=b"same", mode=0o100644), RawMember(name="demo/tool", data=b"same", mode=0o100755),
        ],
    )  # fmt: skip
    (again,) = [f for f in wheel_files(reverse) if f.path == "demo/tool"]
    assert again.mode == 0o755
