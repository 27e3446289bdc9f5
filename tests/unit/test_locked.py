"""Choosing the one file per package for a target, and reading PEP 751 lock files."""

from __future__ import annotations

import pytest

from nativebuild.errors import RequirementSyntaxError, ResolutionError
from nativebuild.inputs.locked import LockedPackage, applies, choose_file, choose_files, read_pylock
from nativebuild.pins import FileRef
from nativebuild.targets import Architecture, GlibcVersion, Target, get_runtime

URL = "https://files.example/packages/"


def target(runtime: str, arch: str = "x86_64", glibc: str | None = None) -> Target:
    rt = get_runtime(runtime)
    return Target(
        runtime=rt,
        arch=Architecture.parse(arch),
        glibc=GlibcVersion.parse(glibc) if glibc else rt.glibc,
        build_image="b",
        runtime_image="r",
    )


def ref(filename: str, sha: str = "a") -> FileRef:
    return FileRef(url=URL + filename, filename=filename, sha256=sha * 64)


CRYPTOGRAPHY = LockedPackage(
    name="cryptography",
    version="43.0.0",
    marker=None,
    wheels=(
        ref("cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "1"),
        ref("cryptography-43.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "2"),
        ref("cryptography-43.0.0-cp39-abi3-manylinux_2_28_aarch64.whl", "3"),
        ref("cryptography-43.0.0-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "4"),
        ref("cryptography-43.0.0-cp39-abi3-macosx_10_9_universal2.whl", "5"),
        ref("cryptography-43.0.0-cp39-abi3-win_amd64.whl", "6"),
    ),
    sdist=ref("cryptography-43.0.0.tar.gz", "7"),
    origin="test",
)


@pytest.mark.parametrize(
    ("runtime", "arch", "expected"),
    [
        # Amazon Linux 2 (glibc 2.26) must never take the manylinux_2_28 wheel.
        ("python3.9", "x86_64", "manylinux_2_17_x86_64"),
        ("python3.10", "x86_64", "manylinux_2_17_x86_64"),
        ("python3.11", "arm64", "manylinux_2_17_aarch64"),
        # Amazon Linux 2023 (glibc 2.34) prefers the newest manylinux it loads.
        ("python3.12", "x86_64", "manylinux_2_28_x86_64"),
        ("python3.13", "arm64", "manylinux_2_28_aarch64"),
        ("python3.14", "x86_64", "manylinux_2_28_x86_64"),
    ],
)
def test_choose_file_respects_the_glibc_ceiling(runtime: str, arch: str, expected: str) -> None:
    pin = choose_file(CRYPTOGRAPHY, target(runtime, arch))
    assert expected in pin.filename
    assert pin.url == URL + pin.filename


def test_declared_glibc_of_a_custom_image_is_honoured() -> None:
    assert "2_28" in choose_file(CRYPTOGRAPHY, target("python3.9", glibc="2.31")).filename
    assert "2_17" in choose_file(CRYPTOGRAPHY, target("python3.12", glibc="2.27")).filename


def test_no_binary_takes_the_sdist() -> None:
    pin = choose_file(CRYPTOGRAPHY, target("python3.12"), no_binary=True)
    assert pin.filename == "cryptography-43.0.0.tar.gz"
    assert pin.sha256 == "7" * 64


def test_sdist_when_no_wheel_fits() -> None:
    only_mac = LockedPackage(
        name="x", version="1", marker=None, wheels=(ref("x-1-cp39-cp39-macosx_11_0_arm64.whl"),),
        sdist=ref("x-1.tar.gz"), origin="test",
    )  # fmt: skip
    assert choose_file(only_mac, target("python3.9")).filename == "x-1.tar.gz"


def test_nothing_fits_names_the_files_and_tags_tried() -> None:
    only_mac = LockedPackage(
        name="x", version="1", marker=None, wheels=(ref("x-1-cp39-cp39-macosx_11_0_arm64.whl"),),
        sdist=None, origin="pylock.toml",
    )  # fmt: skip
    with pytest.raises(ResolutionError) as caught:
        choose_file(only_mac, target("python3.9"))
    message = str(caught.value)
    assert "x-1-cp39-cp39-macosx_11_0_arm64.whl" in message
    assert "manylinux_2_26_x86_64" in message
    assert "manylinux1_x86_64" in message


def test_only_binary_refuses_the_sdist() -> None:
    sdist_only = LockedPackage(
        name="x", version="1", marker=None, wheels=(), sdist=ref("x-1.tar.gz"), origin="t"
    )
    with pytest.raises(ResolutionError) as caught:
        choose_file(sdist_only, target("python3.9"), only_binary=True)
    assert "only-binary" in (caught.value.hint or "")


def test_wrong_python_abi_is_not_taken() -> None:
    package = LockedPackage(
        name="x", version="1", marker=None,
        wheels=(ref("x-1-cp310-cp310-manylinux_2_17_x86_64.whl"), ref("x-1-cp39-cp39-manylinux_2_17_x86_64.whl", "b")),
        sdist=None, origin="t",
    )  # fmt: skip
    assert choose_file(package, target("python3.9")).sha256 == "b" * 64
    assert choose_file(package, target("python3.10")).sha256 == "a" * 64


def test_pure_wheel_is_taken_for_any_target() -> None:
    six = LockedPackage(
        name="six", version="1.16.0", marker=None, wheels=(ref("six-1.16.0-py2.py3-none-any.whl"),),
        sdist=None, origin="t",
    )  # fmt: skip
    for rt in ("python3.9", "python3.14"):
        for arch in ("x86_64", "arm64"):
            assert choose_file(six, target(rt, arch)).filename == "six-1.16.0-py2.py3-none-any.whl"


@pytest.mark.parametrize(
    ("marker", "runtime", "arch", "expected"),
    [
        ("python_version < '3.12'", "python3.11", "x86_64", True),
        ("python_version < '3.12'", "python3.12", "x86_64", False),
        ("sys_platform == 'win32'", "python3.12", "x86_64", False),
        ("sys_platform == 'linux' and platform_machine == 'aarch64'", "python3.12", "arm64", True),
        ("platform_machine == 'aarch64'", "python3.12", "x86_64", False),
        ("implementation_name == 'cpython'", "python3.9", "x86_64", True),
        ("'dev' in dependency_groups", "python3.9", "x86_64", False),
    ],
)
def test_markers_are_evaluated_as_the_target(
    marker: str, runtime: str, arch: str, expected: bool
) -> None:
    package = LockedPackage(name="x", version="1", marker=marker, wheels=(), sdist=None, origin="t")
    assert applies(package, target(runtime, arch).marker_environment()) is expected


def test_groups_and_extras_enable_markers() -> None:
    package = LockedPackage(
        name="x", version="1", marker="'dev' in dependency_groups or 'fast' in extras",
        wheels=(), sdist=None, origin="t",
    )  # fmt: skip
    env = target("python3.9").marker_environment()
    assert applies(package, env, groups=["dev"])
    assert applies(package, env, extras=["fast"])
    assert not applies(package, env)


PYLOCK = """
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "NumPy"
version = "1.26.4"
marker = "python_full_version < '3.12'"
wheels = [{ url = "https://u:p@files.example/numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hashes = { sha256 = "F870204A840A60DA0B12273EF34F7051E98C3B5961B61B0C2C1BE6DFD64FBCD3" } }]

[[packages]]
name = "numpy"
version = "2.1.3"
marker = "python_full_version >= '3.12'"
sdist = { url = "https://files.example/numpy-2.1.3.tar.gz", hashes = { sha256 = "aa" } }
wheels = [{ name = "numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.whl", url = "https://files.example/x", hashes = { sha256 = "bb" } }]

[[packages]]
name = "pywin32"
version = "306"
marker = "sys_platform == 'win32'"
wheels = [{ url = "https://files.example/pywin32-306-cp39-cp39-win_amd64.whl", hashes = { sha256 = "cc" } }]
"""


def test_read_pylock_and_choose_per_python_version() -> None:
    packages = read_pylock(PYLOCK, origin="pylock.toml")
    assert [p.name for p in packages] == ["numpy", "numpy", "pywin32"]
    assert packages[0].wheels[0].url.startswith("https://files.example/"), "credentials are dropped"
    assert (
        packages[0].wheels[0].sha256
        == "f870204a840a60da0b12273ef34f7051e98c3b5961b61b0c2c1be6dfd64fbcd3"
    )
    assert packages[1].wheels[0].filename == "numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.whl"
    [old] = choose_files(packages, target("python3.9"))
    [new] = choose_files(packages, target("python3.12"))
    assert old.version == "1.26.4"
    assert new.version == "2.1.3"
    assert new.filename.endswith(".whl")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[packages]]\nversion = '1'\n", RequirementSyntaxError),
        ("[[packages]]\nname = 'x'\n", RequirementSyntaxError),
        (
            "[[packages]]\nname = 'x'\nversion = '1'\nvcs = { type = 'git', url = 'https://g' }\n",
            ResolutionError,
        ),
        (
            "[[packages]]\nname = 'x'\nversion = '1'\nwheels = [{ url = 'https://a/x-1-py3-none-any.whl' }]\n",
            RequirementSyntaxError,
        ),
        ("not toml [", RequirementSyntaxError),
    ],
)
def test_read_pylock_refuses_what_it_cannot_install(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_pylock(text, origin="pylock.toml")


def test_two_versions_for_one_target_is_an_error() -> None:
    packages = (
        LockedPackage(name="x", version="1", marker=None, wheels=(ref("x-1-py3-none-any.whl"),), sdist=None, origin="t"),
        LockedPackage(name="x", version="2", marker=None, wheels=(ref("x-2-py3-none-any.whl"),), sdist=None, origin="t"),
    )  # fmt: skip
    with pytest.raises(ResolutionError, match="pinned twice"):
        choose_files(packages, target("python3.9"))


@pytest.mark.parametrize(
    ("glibc", "arch", "expected"),
    [
        ("2.26", "x86_64", "x86_64-manylinux_2_17"),
        ("2.31", "x86_64", "x86_64-manylinux_2_31"),
        ("2.34", "arm64", "aarch64-manylinux_2_34"),
        ("2.29", "x86_64", "x86_64-manylinux_2_28"),
        ("2.12", "x86_64", None),
    ],
)
def test_uv_platform_never_exceeds_the_ceiling(glibc: str, arch: str, expected: str | None) -> None:
    assert target("python3.9", arch, glibc).uv_platform() == expected
