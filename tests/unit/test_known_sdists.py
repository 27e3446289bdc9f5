"""Which sdists are known before resolving: pinned, the only file of their version that the
target could take, allowed by requires-python (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nativebuild.index.simple_api import IndexFile
from nativebuild.inputs.requirement_line import RequirementLine
from nativebuild.inputs.requirements import RequirementSet, parse_requirements_text
from nativebuild.resolve.known_sdists import candidates, could_load, known_sdist, known_sdists
from nativebuild.targets import Architecture, GlibcVersion, Target, get_runtime

SHA = "a" * 64


def target(runtime: str = "python3.13", arch: str = "x86_64") -> Target:
    row = get_runtime(runtime)
    return Target(
        runtime=row, arch=Architecture(arch), glibc=GlibcVersion.parse("2.34"),
        build_image="b", runtime_image="r",
    )  # fmt: skip


def requirements(text: str) -> RequirementSet:
    return parse_requirements_text(
        text, origin="requirements.txt", base_dir=Path("/nowhere"),
        read_file=lambda path: "", env={},
    )  # fmt: skip


def file(filename: str, **fields: object) -> IndexFile:
    values: dict[str, object] = {
        "url": f"https://files.example/{filename}", "sha256": SHA, "requires_python": None,
        "yanked": False,
    }  # fmt: skip
    values.update(fields)
    return IndexFile(filename=filename, **values)  # type: ignore[arg-type]


def names(text: str, for_target: Target | None = None) -> list[str]:
    return [line.name for line in candidates(requirements(text), for_target or target())]


def test_candidates_are_the_pinned_requirements_of_the_target() -> None:
    text = (
        "simplejson==3.17.2\nwrapt>=1.12\nsix==1.*\nidna==3.6,<4\n"
        "futures==3.0.0; python_version < '3'\nPyYAML==6.0.1; platform_machine == 'x86_64'\n"
    )
    assert names(text) == ["simplejson", "pyyaml"]
    assert names(text, target(arch="arm64")) == ["simplejson"]


def test_no_candidates_in_hash_checking_mode_or_when_only_wheels_are_allowed() -> None:
    assert names(f"simplejson==3.17.2 --hash=sha256:{SHA}\nwrapt==1.12.1\n") == []
    assert names("--require-hashes\nwrapt==1.12.1\n") == []
    assert names("--only-binary :all:\nwrapt==1.12.1\n") == []
    assert names("--only-binary wrapt\nwrapt==1.12.1\nsix==1.16.0\n") == ["six"]


def test_a_name_given_twice_is_left_to_pip() -> None:
    assert names("wrapt==1.12.1\nwrapt[extra]==1.12.1\nsix==1.16.0\n") == ["six"]


def line(text: str = "wrapt==1.12.1") -> RequirementLine:
    [only] = requirements(text + "\n").requirements
    return only


def test_the_only_file_of_the_version_is_known_with_its_hash() -> None:
    files = [file("wrapt-1.12.0.tar.gz"), file("wrapt-1.12.1.tar.gz", sha256="b" * 64)]
    pin = known_sdist(line(), files, target())
    assert pin is not None
    assert (pin.name, pin.version, pin.filename, pin.sha256) == (
        "wrapt", "1.12.1", "wrapt-1.12.1.tar.gz", "b" * 64,
    )  # fmt: skip
    assert pin.url == "https://files.example/wrapt-1.12.1.tar.gz"


@pytest.mark.parametrize(
    "wheel",
    [
        "wrapt-1.12.1-py3-none-any.whl",
        "wrapt-1.12.1-cp313-cp313-manylinux_2_17_x86_64.whl",
        "wrapt-1.12.1-cp313-cp313-manylinux_2_99_x86_64.whl",  # newer glibc: the image may take it
        "wrapt-1.12.1-cp310-abi3-linux_x86_64.whl",
    ],
)
def test_a_wheel_the_target_might_take_leaves_it_to_pip(wheel: str) -> None:
    assert could_load(wheel, target())
    assert known_sdist(line(), [file("wrapt-1.12.1.tar.gz"), file(wheel)], target()) is None


@pytest.mark.parametrize(
    "wheel",
    [
        "wrapt-1.12.1-cp38-cp38-manylinux1_x86_64.whl",  # another Python
        "wrapt-1.12.1-cp313-cp313-manylinux2014_aarch64.whl",  # another machine
        "wrapt-1.12.1-cp313-cp313-win_amd64.whl",
    ],
)
def test_wheels_the_target_cannot_take_do_not_count(wheel: str) -> None:
    assert not could_load(wheel, target())
    assert known_sdist(line(), [file("wrapt-1.12.1.tar.gz"), file(wheel)], target()) is not None


def test_a_wheel_of_another_version_does_not_count() -> None:
    files = [file("wrapt-1.12.1.tar.gz"), file("wrapt-1.12.0-py3-none-any.whl")]
    assert known_sdist(line(), files, target()) is not None


def test_files_pip_ignores_do_not_count_but_an_unreadable_archive_does() -> None:
    sdist = file("wrapt-1.12.1.tar.gz")
    assert known_sdist(line(), [sdist, file("wrapt-1.12.1-py2.7.egg")], target()) is not None
    assert known_sdist(line(), [sdist, file("wrapt_not_a_version.tar.gz")], target()) is None


@pytest.mark.parametrize(
    "files",
    [
        [file("wrapt-1.12.1.tar.gz"), file("wrapt-1.12.1.zip")],  # two sdists: pip picks
        [file("wrapt-1.12.1.tar.gz", yanked=True)],
        [file("wrapt-1.12.1.tar.gz", sha256=None)],
        [file("wrapt-1.12.1.tar.gz", requires_python="<3.13")],
        [file("wrapt-1.12.1.tar.gz", requires_python=">=3.13.3")],  # not every 3.13
        [file("wrapt-1.12.1.tar.gz", requires_python="not a specifier")],
        [],
    ],
)
def test_anything_less_certain_is_left_to_pip(files: list[IndexFile]) -> None:
    assert known_sdist(line(), files, target()) is None


def test_requires_python_that_allows_the_target_keeps_it() -> None:
    files = [file("wrapt-1.12.1.tar.gz", requires_python=">=2.7, !=3.0.*")]
    assert known_sdist(line(), files, target()) is not None


def test_known_sdists_takes_each_line_whose_page_was_read() -> None:
    lines = list(requirements("wrapt==1.12.1\nsix==1.16.0\nidna==3.6\n").requirements)
    pages = {
        "wrapt": [file("wrapt-1.12.1.tar.gz")],
        "six": [file("six-1.16.0.tar.gz"), file("six-1.16.0-py2.py3-none-any.whl")],
    }
    assert [pin.name for pin in known_sdists(lines, pages, target())] == ["wrapt"]
