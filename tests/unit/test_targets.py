"""The runtime table, the architectures, and which wheel tags each target loads."""

from __future__ import annotations

import datetime
import re

import pytest
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from nativebuild import targets
from nativebuild.errors import ConfigError
from nativebuild.targets import (
    Architecture,
    GlibcVersion,
    Runtime,
    Target,
    expand_image,
    get_runtime,
    manylinux_platforms,
    pinned_digests,
    runtimes,
)

X86, ARM = Architecture.X86_64, Architecture.ARM64
AL2, AL2023 = GlibcVersion(major=2, minor=26), GlibcVersion(major=2, minor=34)

# runtime, abi, OS, glibc ceiling
RUNTIME_TABLE = [
    ("python3.9", "cp39", "Amazon Linux 2", AL2),
    ("python3.10", "cp310", "Amazon Linux 2", AL2),
    ("python3.11", "cp311", "Amazon Linux 2", AL2),
    ("python3.12", "cp312", "Amazon Linux 2023", AL2023),
    ("python3.13", "cp313", "Amazon Linux 2023", AL2023),
    ("python3.14", "cp314", "Amazon Linux 2023", AL2023),
]
RUNTIME_NAMES = [row[0] for row in RUNTIME_TABLE]
OLD_RUNTIMES = RUNTIME_NAMES[:3]  # Amazon Linux 2, glibc 2.26
NEW_RUNTIMES = RUNTIME_NAMES[3:]  # Amazon Linux 2023, glibc 2.34


def make_target(runtime: str, arch: Architecture, glibc: GlibcVersion | None = None) -> Target:
    row = get_runtime(runtime)
    return Target(
        runtime=row,
        arch=arch,
        glibc=glibc or row.glibc,
        build_image=expand_image(row.build_image, arch),
        runtime_image=expand_image(row.runtime_image, arch),
    )


def wheel_tags(filename: str) -> frozenset[Tag]:
    return parse_wheel_filename(filename)[3]


# --- the runtime table ---------------------------------------------------------------------


def test_runtime_table_holds_exactly_the_six_python_runtimes() -> None:
    assert list(runtimes()) == RUNTIME_NAMES


@pytest.mark.parametrize(("name", "abi", "os_name", "glibc"), RUNTIME_TABLE)
def test_runtime_row(name: str, abi: str, os_name: str, glibc: GlibcVersion) -> None:
    runtime = get_runtime(name)
    minor = int(name.removeprefix("python3."))
    assert runtime.name == name
    assert runtime.python == f"3.{minor}"
    assert runtime.python_version == (3, minor)
    assert runtime.abi == abi
    assert runtime.os == os_name
    assert runtime.glibc == glibc
    assert runtime.interpreter_path == f"/var/lang/bin/python3.{minor}"
    assert isinstance(runtime.deprecated, datetime.date)  # compared with the day of a build


@pytest.mark.parametrize(("name", "abi", "os_name", "glibc"), RUNTIME_TABLE)
@pytest.mark.parametrize("arch", [X86, ARM])
def test_target_for_every_runtime_and_arch(
    name: str, abi: str, os_name: str, glibc: GlibcVersion, arch: Architecture
) -> None:
    target = make_target(name, arch)
    version = name.removeprefix("python")
    assert target.runtime.abi == abi
    assert target.glibc == glibc
    assert target.build_image == f"public.ecr.aws/sam/build-python{version}:latest-{arch.value}"
    assert target.runtime_image == f"public.ecr.aws/lambda/python:{version}-{arch.value}"
    assert "{arch}" not in target.build_image + target.runtime_image
    assert target.describe() == f"{name} {arch.value} (glibc {glibc})"
    # The most preferred tag is the runtime's own ABI on the newest manylinux it loads.
    first = next(iter(target.supported_tags()))
    assert first == Tag(abi, abi, f"manylinux_2_{glibc.minor}_{arch.machine}")


@pytest.mark.parametrize("name", ["Python3.12", " python3.12 ", "PYTHON3.12"])
def test_get_runtime_ignores_case_and_whitespace(name: str) -> None:
    assert get_runtime(name).name == "python3.12"


@pytest.mark.parametrize("name", ["python3.8", "python2.7", "python", "3.12", ""])
def test_get_runtime_unknown_lists_the_valid_runtimes(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_runtime(name)
    message = str(info.value)
    assert f"Unknown runtime {name!r}" in message
    for valid in RUNTIME_NAMES:
        assert valid in message
    assert info.value.exit_code == 2


def test_pinned_digests_in_the_data_file_are_well_formed() -> None:
    """Every recorded digest pins one of the default images, by a sha256 digest."""
    defaults = {
        expand_image(template, arch).split("@")[0]
        for runtime in runtimes().values()
        for template in (runtime.build_image, runtime.runtime_image)
        for arch in Architecture
    }
    for ref, digest in pinned_digests().items():
        assert ref in defaults
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)


# --- images --------------------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


def test_expand_image_fills_arch() -> None:
    assert expand_image("registry.example/build:{arch}", ARM) == "registry.example/build:arm64"
    assert expand_image("registry.example/build:{arch}", X86) == "registry.example/build:x86_64"
    assert expand_image("registry.example/build:fixed", X86) == "registry.example/build:fixed"


def test_expand_image_fills_runtime() -> None:
    template = "registry.example/build-{runtime}:{arch}"
    assert expand_image(template, ARM, "python3.13") == "registry.example/build-python3.13:arm64"
    with pytest.raises(ConfigError, match=r"names \{runtime\}"):
        expand_image(template, ARM)


def test_settings_fill_runtime_in_images() -> None:
    from nativebuild.config.settings import Settings

    settings = Settings(
        runtime="python3.11", archs=(X86, ARM), build_image="b/{runtime}:{arch}",
        runtime_image="r/{runtime}-{arch}",
    )  # fmt: skip
    assert [(t.build_image, t.runtime_image) for t in settings.targets()] == [
        ("b/python3.11:x86_64", "r/python3.11-x86_64"), ("b/python3.11:arm64", "r/python3.11-arm64"),
    ]  # fmt: skip


def test_expand_image_pins_by_recorded_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = {"public.ecr.aws/lambda/python:3.12-arm64": DIGEST}
    monkeypatch.setattr(targets, "pinned_digests", lambda: recorded)
    pinned = expand_image("public.ecr.aws/lambda/python:3.12-{arch}", ARM)
    assert pinned == f"public.ecr.aws/lambda/python:3.12-arm64@{DIGEST}"
    # The other architecture has no digest recorded: the tag is used as is.
    unpinned = expand_image("public.ecr.aws/lambda/python:3.12-{arch}", X86)
    assert unpinned == "public.ecr.aws/lambda/python:3.12-x86_64"


def test_expand_image_keeps_an_explicit_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "sha256:" + "cd" * 32
    monkeypatch.setattr(
        targets, "pinned_digests", lambda: {"public.ecr.aws/lambda/python:3.12-x86_64": DIGEST}
    )
    ref = f"public.ecr.aws/lambda/python:3.12-x86_64@{other}"
    assert expand_image(ref, X86) == ref


def test_default_targets_are_pinned_when_a_digest_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = {"public.ecr.aws/sam/build-python3.9:latest-x86_64": DIGEST}
    monkeypatch.setattr(targets, "pinned_digests", lambda: recorded)
    target = make_target("python3.9", X86)
    assert target.build_image == f"public.ecr.aws/sam/build-python3.9:latest-x86_64@{DIGEST}"
    assert target.runtime_image == "public.ecr.aws/lambda/python:3.9-x86_64"


# --- architectures and glibc versions ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x86_64", X86),
        ("amd64", X86),
        ("AMD64", X86),
        (" x86_64 ", X86),
        ("arm64", ARM),
        ("aarch64", ARM),
        ("ARM64", ARM),
    ],
)
def test_architecture_parse_aliases(text: str, expected: Architecture) -> None:
    assert Architecture.parse(text) is expected


@pytest.mark.parametrize("text", ["i686", "armv7l", "x86-64", "", "arm", "ppc64le"])
def test_architecture_parse_unknown(text: str) -> None:
    with pytest.raises(ConfigError, match="Unknown architecture"):
        Architecture.parse(text)


@pytest.mark.parametrize(
    ("arch", "machine", "platform"),
    [(X86, "x86_64", "linux/amd64"), (ARM, "aarch64", "linux/arm64")],
)
def test_architecture_names(arch: Architecture, machine: str, platform: str) -> None:
    assert arch.machine == machine
    assert arch.docker_platform == platform


@pytest.mark.parametrize(
    ("text", "major", "minor"), [("2.26", 2, 26), (" 2.34 ", 2, 34), ("2.5", 2, 5)]
)
def test_glibc_parse(text: str, major: int, minor: int) -> None:
    version = GlibcVersion.parse(text)
    assert (version.major, version.minor) == (major, minor)
    assert str(version) == f"{major}.{minor}"


@pytest.mark.parametrize(
    "text", ["", "2", "2.", ".26", "2.26.1", "v2.26", "2.x", "two.26", "2.-1", "2,26", "2.²", "2.٣"]
)
def test_glibc_parse_bad_input(text: str) -> None:
    with pytest.raises(ConfigError, match="Invalid glibc version"):
        GlibcVersion.parse(text)


def test_glibc_versions_order_numerically() -> None:
    assert GlibcVersion.parse("2.5") < GlibcVersion.parse("2.17") < GlibcVersion.parse("2.34")


# --- manylinux platforms -------------------------------------------------------------------


def test_manylinux_platforms_x86_64_glibc_2_26_in_full() -> None:
    expected = [f"manylinux_2_{m}_x86_64" for m in range(26, 16, -1)]
    expected += ["manylinux2014_x86_64"]
    expected += [f"manylinux_2_{m}_x86_64" for m in range(16, 11, -1)]
    expected += ["manylinux2010_x86_64"]
    expected += [f"manylinux_2_{m}_x86_64" for m in range(11, 4, -1)]
    expected += ["manylinux1_x86_64"]
    assert manylinux_platforms(X86, AL2) == expected


def test_manylinux_platforms_aarch64_stop_at_2_17_without_older_legacy_names() -> None:
    expected = [f"manylinux_2_{m}_aarch64" for m in range(26, 16, -1)] + ["manylinux2014_aarch64"]
    assert manylinux_platforms(ARM, AL2) == expected


@pytest.mark.parametrize("arch", [X86, ARM])
def test_manylinux_platforms_glibc_2_34(arch: Architecture) -> None:
    platforms = manylinux_platforms(arch, AL2023)
    machine = arch.machine
    assert platforms[0] == f"manylinux_2_34_{machine}"
    assert f"manylinux_2_28_{machine}" in platforms
    assert f"manylinux_2_35_{machine}" not in platforms
    assert len(platforms) == len(set(platforms))


@pytest.mark.parametrize("arch", [X86, ARM])
def test_manylinux_platforms_glibc_2_26_exclude_newer(arch: Architecture) -> None:
    platforms = manylinux_platforms(arch, AL2)
    assert f"manylinux_2_26_{arch.machine}" in platforms
    assert f"manylinux_2_27_{arch.machine}" not in platforms
    assert f"manylinux_2_28_{arch.machine}" not in platforms


def test_manylinux_platforms_legacy_alias_follows_its_glibc() -> None:
    platforms = manylinux_platforms(X86, AL2023)
    for legacy, minor in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
        index = platforms.index(f"{legacy}_x86_64")
        assert platforms[index - 1] == f"manylinux_2_{minor}_x86_64"
    assert platforms[-1] == "manylinux1_x86_64"


@pytest.mark.parametrize("arch", [X86, ARM])
def test_manylinux_platforms_refuse_non_glibc_2(arch: Architecture) -> None:
    with pytest.raises(ConfigError, match=r"glibc 3\.1"):
        manylinux_platforms(arch, GlibcVersion(major=3, minor=1))


def test_target_platform_tags_follow_a_glibc_override() -> None:
    target = make_target("python3.12", X86, GlibcVersion(major=2, minor=31))
    assert target.platform_tags[0] == "manylinux_2_31_x86_64"
    assert "manylinux_2_34_x86_64" not in target.platform_tags


# --- which wheels a target accepts ---------------------------------------------------------


def _abi(runtime: str) -> str:
    return get_runtime(runtime).abi


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
@pytest.mark.parametrize("arch", [X86, ARM])
def test_manylinux_2_28_wheel_needs_al2023(runtime: str, arch: Architecture) -> None:
    abi = _abi(runtime)
    filename = f"numpy-2.1.0-{abi}-{abi}-manylinux_2_28_{arch.machine}.whl"
    accepted = make_target(runtime, arch).accepts(wheel_tags(filename))
    assert accepted is (runtime in NEW_RUNTIMES)


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_manylinux2014_wheel_accepted_on_x86_64_refused_on_arm64(runtime: str) -> None:
    abi = _abi(runtime)
    filename = f"cffi-1.17.1-{abi}-{abi}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert make_target(runtime, X86).accepts(wheel_tags(filename))
    assert not make_target(runtime, ARM).accepts(wheel_tags(filename))


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_manylinux2014_aarch64_wheel_accepted_on_arm64(runtime: str) -> None:
    abi = _abi(runtime)
    filename = f"cffi-1.17.1-{abi}-{abi}-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    assert make_target(runtime, ARM).accepts(wheel_tags(filename))
    assert not make_target(runtime, X86).accepts(wheel_tags(filename))


def test_manylinux1_wheel_accepted_on_x86_64_only() -> None:
    filename = "simplejson-3.19.3-cp39-cp39-manylinux1_x86_64.whl"
    assert make_target("python3.9", X86).accepts(wheel_tags(filename))
    assert not make_target("python3.9", ARM).accepts(wheel_tags(filename))


@pytest.mark.parametrize(
    ("runtime", "accepted"),
    [
        ("python3.9", False),
        ("python3.10", False),
        ("python3.11", False),
        ("python3.12", True),
        ("python3.13", True),
        ("python3.14", True),
    ],
)
def test_cp312_abi3_wheel_needs_python_3_12_or_newer(runtime: str, accepted: bool) -> None:
    filename = "cryptography-44.0.0-cp312-abi3-manylinux_2_28_x86_64.whl"
    assert make_target(runtime, X86).accepts(wheel_tags(filename)) is accepted


def test_cp39_abi3_wheel_accepted_by_every_runtime() -> None:
    filename = "cryptography-44.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    for runtime in RUNTIME_NAMES:
        assert make_target(runtime, X86).accepts(wheel_tags(filename)), runtime


def test_cp39_wheel_refused_by_python_3_10() -> None:
    filename = "markupsafe-2.1.5-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert make_target("python3.9", X86).accepts(wheel_tags(filename))
    assert not make_target("python3.10", X86).accepts(wheel_tags(filename))


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
@pytest.mark.parametrize("arch", [X86, ARM])
@pytest.mark.parametrize(
    "filename", ["six-1.16.0-py2.py3-none-any.whl", "requests-2.32.3-py3-none-any.whl"]
)
def test_pure_python_wheel_accepted_everywhere(
    runtime: str, arch: Architecture, filename: str
) -> None:
    assert make_target(runtime, arch).accepts(wheel_tags(filename))


@pytest.mark.parametrize(
    "filename",
    [
        "markupsafe-2.1.5-cp39-cp39-macosx_10_9_x86_64.whl",
        "markupsafe-2.1.5-cp39-cp39-macosx_11_0_arm64.whl",
        "markupsafe-2.1.5-cp39-cp39-win_amd64.whl",
        "markupsafe-2.1.5-cp39-cp39-linux_x86_64.whl",
        "markupsafe-2.1.5-cp39-cp39-musllinux_1_1_x86_64.whl",
        "markupsafe-2.1.5-pp39-pypy39_pp73-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "legacy-1.0-py2-none-any.whl",
    ],
)
@pytest.mark.parametrize("arch", [X86, ARM])
def test_foreign_wheels_refused(filename: str, arch: Architecture) -> None:
    assert not make_target("python3.9", arch).accepts(wheel_tags(filename))


def test_tag_priority_prefers_own_abi_then_abi3_then_pure() -> None:
    priority = make_target("python3.12", X86).tag_priority
    own = priority[Tag("cp312", "cp312", "manylinux_2_17_x86_64")]
    stable = priority[Tag("cp312", "abi3", "manylinux_2_17_x86_64")]
    pure = priority[Tag("py3", "none", "any")]
    assert own < stable < pure
    # A newer manylinux is preferred over an older one for the same ABI.
    assert priority[Tag("cp312", "cp312", "manylinux_2_34_x86_64")] < own


def test_runtime_is_a_frozen_record() -> None:
    runtime = get_runtime("python3.9")
    assert isinstance(runtime, Runtime)
    with pytest.raises(AttributeError):
        runtime.glibc = AL2023  # type: ignore[misc]


# --- what the target reports to resolvers and to pip (mutation run) ----------------------------


def test_marker_environment_is_lambdas_not_the_hosts() -> None:
    assert make_target("python3.12", ARM).marker_environment() == {
        "implementation_name": "cpython",
        "implementation_version": "3.12.0",
        "os_name": "posix",
        "platform_machine": "aarch64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.12.0",
        "python_version": "3.12",
        "sys_platform": "linux",
    }


@pytest.mark.parametrize(
    "wheel",
    [
        "x-1-cp312-cp312-manylinux_2_17_aarch64.whl",
        "x-1-cp312-abi3-manylinux_2_28_aarch64.whl",
        "x-1-cp39-abi3-manylinux2014_aarch64.whl",  # abi3 from an older CPython
        "x-1-cp312-none-manylinux_2_17_aarch64.whl",
        "x-1-py3-none-manylinux_2_17_aarch64.whl",
        "x-1-py312-none-any.whl",  # not the host's Python: the target's
        "x-1-cp312-none-any.whl",
        "x-1-py3-none-any.whl",
    ],
)
def test_the_tags_an_arm64_312_target_loads(wheel: str) -> None:
    assert make_target("python3.12", ARM).accepts(wheel_tags(wheel))


@pytest.mark.parametrize(
    "wheel",
    [
        "x-1-cp311-cp311-manylinux_2_17_aarch64.whl",
        "x-1-cp312-cp312-manylinux_2_17_x86_64.whl",
        "x-1-py3-none-manylinux_2_17_x86_64.whl",
        "x-1-cp312-cp312-manylinux_2_35_aarch64.whl",
        "x-1-cp312-none-linux_aarch64.whl",
        "x-1-cp313-none-any.whl",
    ],
)
def test_the_tags_an_arm64_312_target_refuses(wheel: str) -> None:
    assert not make_target("python3.12", ARM).accepts(wheel_tags(wheel))


@pytest.mark.parametrize(
    ("glibc", "platform"), [("2.27", "2_17"), ("2.28", "2_28"), ("2.34", "2_34")]
)
def test_uv_platform_is_the_newest_manylinux_the_glibc_loads(glibc: str, platform: str) -> None:
    target = make_target("python3.12", X86, GlibcVersion.parse(glibc))
    assert target.uv_platform() == f"x86_64-manylinux_{platform}"


def test_expand_image_pins_a_recorded_digest_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nativebuild.targets.pinned_digests", lambda: {"r/b:x86_64": "sha256:ab"})
    assert expand_image("r/b:{arch}", X86) == "r/b:x86_64@sha256:ab"
    assert expand_image("r/b:x86_64@sha256:cd", X86) == "r/b:x86_64@sha256:cd"
    assert expand_image("r/b:{arch}", ARM) == "r/b:arm64"


def test_an_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_runtime("python2.7")
    assert str(info.value) == (
        "Unknown runtime 'python2.7'. Lambda's Python runtimes are: "
        + ", ".join(RUNTIME_NAMES)
        + "."
    )


def test_an_image_naming_the_runtime_needs_one() -> None:
    template = "registry.example/build:{runtime}-{arch}"
    assert expand_image(template, Architecture.ARM64, "python3.12") == (
        "registry.example/build:python3.12-arm64"
    )
    with pytest.raises(ConfigError, match=r"names \{runtime\}") as caught:
        expand_image(template, Architecture.ARM64)
    assert caught.value.hint is not None
    assert "without {runtime}" in caught.value.hint
