from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nativebuild.errors import (
    RequirementsFileNotFoundError,
    RequirementSyntaxError,
    ResolutionError,
)
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.uv import UvResult
from nativebuild.inputs.locked import LockedPackage, applies, choose_files
from nativebuild.inputs.lockfiles import InputKind, input_kind, load_locked
from nativebuild.inputs.pyproject import requirements_from_pyproject
from nativebuild.pins import FileRef
from nativebuild.targets import Architecture, Target, get_runtime

X86_TARGET = Target(
    runtime=get_runtime("python3.12"),
    arch=Architecture.X86_64,
    glibc=get_runtime("python3.12").glibc,
    build_image="b",
    runtime_image="r",
)

LINUX_39 = {
    "python_version": "3.9",
    "python_full_version": "3.9.18",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_version": "",
    "implementation_version": "3.9.18",
}
LINUX_312 = {**LINUX_39, "python_version": "3.12", "python_full_version": "3.12.4"}
WINDOWS_39 = {**LINUX_39, "sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}
SHA = "ab" * 32
PYLOCK = f"""\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "Six"
version = "1.16.0"
wheels = [{{ url = "https://files.example/six-1.16.0-py2.py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "markupsafe"
version = "2.1.5"
marker = "python_full_version < '3.12'"
sdist = {{ url = "https://u:secret@files.example/MarkupSafe-2.1.5.tar.gz", hashes = {{ sha256 = "{SHA}" }} }}
"""


def load(
    path: Path,
    *,
    kind: InputKind,
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
    uv: FakeUv | None = None,
    lookup: FakeLookup | None = None,
) -> tuple[LockedPackage, ...]:
    return load_locked(
        path,
        kind=kind,
        extras=extras,
        groups=groups,
        uv=uv or FakeUv(),
        index=IndexSettings(),
        env={"PATH": "/usr/bin", "SECRET_TOKEN": "x"},
        cache_dir=path.parent / "uv-cache",
        lookup=lookup,
    )


def by_name(packages: Sequence[LockedPackage]) -> dict[str, LockedPackage]:
    return {p.name: p for p in packages}


# --- input_kind ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pyproject.toml", "pyproject"),
        ("uv.lock", "uv-lock"),
        ("poetry.lock", "poetry-lock"),
        ("pylock.toml", "pylock"),
        ("pylock.prod.toml", "pylock"),
        ("pylock.a.b.toml", "requirements"),  # PEP 751: the name holds no dots
        ("pylock..toml", "requirements"),
        ("requirements.txt", "requirements"),
        ("requirements-lock.toml", "requirements"),
        ("my-uv.lock", "requirements"),
    ],
)
def test_input_kind_is_decided_by_file_name(name: str, kind: str) -> None:
    assert input_kind(Path("some/dir") / name) == kind


def test_requirements_and_pyproject_are_not_lock_files(tmp_path: Path) -> None:
    for kind in ("requirements", "pyproject"):
        with pytest.raises(ValueError, match="not a lock file"):
            load(tmp_path / "x", kind=kind)


# --- pylock.toml -----------------------------------------------------------------------------


def test_pylock_is_read_as_locked(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(PYLOCK)
    packages = by_name(load(path, kind="pylock"))
    assert packages["six"].wheels[0].filename == "six-1.16.0-py2.py3-none-any.whl"
    assert packages["six"].origin == str(path)
    sdist = packages["markupsafe"].sdist
    assert sdist is not None
    assert sdist.url == "https://files.example/MarkupSafe-2.1.5.tar.gz"  # credentials gone
    assert applies(packages["markupsafe"], LINUX_39)
    assert not applies(packages["markupsafe"], LINUX_312)


def test_missing_pylock_is_reported_as_not_found(tmp_path: Path) -> None:
    with pytest.raises(RequirementsFileNotFoundError, match=r"pylock\.toml not found"):
        load(tmp_path / "pylock.toml", kind="pylock")


# --- uv.lock ---------------------------------------------------------------------------------


class FakeUv:
    """Stands in for ``uv export``: checks nothing itself, records, and writes ``output``."""

    def __init__(self, output: str = PYLOCK, *, returncode: int = 0, stderr: str = "") -> None:
        self.installed = True
        self.output = output
        self.returncode = returncode
        self.stderr = stderr
        self.calls: list[tuple[list[str], Path | None, dict[str, str]]] = []

    def available(self) -> bool:
        return self.installed

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult:
        self.calls.append((list(args), cwd, dict(env)))
        if self.returncode == 0:
            Path(args[args.index("--output-file") + 1]).write_text(self.output)
        return UvResult(returncode=self.returncode, stdout="", stderr=self.stderr)


def uv_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\n')
    (project / "uv.lock").write_text("version = 1\n")
    return project / "uv.lock"


def test_uv_lock_is_exported_frozen_without_dev_group_or_project(tmp_path: Path) -> None:
    uv = FakeUv()
    lock = uv_project(tmp_path)
    packages = load(lock, kind="uv-lock", uv=uv)
    assert [p.name for p in packages] == ["six", "markupsafe"]
    assert packages[0].origin == str(lock)
    ((args, cwd, env),) = uv.calls
    assert args[:3] == ["export", "--format", "pylock.toml"]
    for flag in ("--frozen", "--no-emit-project", "--no-dev", "--no-default-groups"):
        assert flag in args
    assert "--extra" not in args
    assert "--group" not in args
    assert Path(args[args.index("--output-file") + 1]).name == "pylock.toml"
    assert cwd == lock.parent
    assert env["UV_NO_CONFIG"] == "1"
    assert "SECRET_TOKEN" not in env  # uv_environment, not the host's whole environment


def test_uv_lock_export_passes_extras_and_groups(tmp_path: Path) -> None:
    uv = FakeUv()
    load(uv_project(tmp_path), kind="uv-lock", uv=uv, extras=["fast", "s3"], groups=["docs"])
    args = uv.calls[0][0]
    assert args[args.index("--extra") :][:4] == ["--extra", "fast", "--extra", "s3"]
    assert args[args.index("--group") :][:2] == ["--group", "docs"]
    assert "--no-dev" in args


def test_uv_lock_export_keeps_dev_group_when_asked(tmp_path: Path) -> None:
    uv = FakeUv()
    load(uv_project(tmp_path), kind="uv-lock", uv=uv, groups=["dev"])
    args = uv.calls[0][0]
    assert "--no-dev" not in args  # uv drops dev when both are given
    assert args[args.index("--group") :][:2] == ["--group", "dev"]


def test_uv_failure_is_a_resolution_error_with_redacted_stderr(tmp_path: Path) -> None:
    stderr = "noise\n" * 30 + "error: cannot fetch https://user:hunter2@pypi.internal/simple\n"
    uv = FakeUv(returncode=2, stderr=stderr)
    with pytest.raises(ResolutionError) as info:
        load(uv_project(tmp_path), kind="uv-lock", uv=uv)
    message = str(info.value)
    assert "exit code 2" in message
    assert "https://***@pypi.internal/simple" in message
    assert "hunter2" not in message
    assert message.count("noise") < 30  # only the tail


def test_uv_lock_with_a_local_path_dependency_is_not_supported(tmp_path: Path) -> None:
    output = PYLOCK + '\n[[packages]]\nname = "lib"\ndirectory = { path = "../lib" }\n'
    packages = load(uv_project(tmp_path), kind="uv-lock", uv=FakeUv(output))
    [lib] = [p for p in packages if p.name == "lib"]
    assert lib.directory == "../lib"
    # Only local projects named in a requirements file are packed; a lock's own cannot be built.
    with pytest.raises(ResolutionError, match="did not pack"):
        choose_files([lib], X86_TARGET)


def test_uv_lock_without_uv_installed_says_so(tmp_path: Path) -> None:
    uv = FakeUv()
    uv.installed = False
    with pytest.raises(ResolutionError, match="uv is needed") as info:
        load(uv_project(tmp_path), kind="uv-lock", uv=uv)
    assert info.value.hint is not None
    assert "pip install uv" in info.value.hint
    assert uv.calls == []


def test_missing_uv_lock_is_reported_before_running_uv(tmp_path: Path) -> None:
    uv = FakeUv()
    with pytest.raises(RequirementsFileNotFoundError):
        load(tmp_path / "uv.lock", kind="uv-lock", uv=uv)
    assert uv.calls == []


# --- poetry.lock -----------------------------------------------------------------------------

POETRY_PYPROJECT = """\
[tool.poetry]
name = "app"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.9"
requests = { version = "^2.31", extras = ["socks"] }
click = "^8.1"
tomli = { version = "^2.0", python = "<3.11" }
numpy = [
    { version = "1.24.4", python = "<3.12" },
    { version = "1.26.4", python = ">=3.12" },
]
redis = { version = "^5.0", optional = true }

[tool.poetry.extras]
cache = ["redis"]

[tool.poetry.group.dev.dependencies]
pytest = "^8.0"

[tool.poetry.group.docs]
optional = true

[tool.poetry.group.docs.dependencies]
mkdocs = "^1.5"
"""


def files(*names: str) -> str:
    entries = "".join(f'    {{file = "{n}", hash = "sha256:{SHA}"}},\n' for n in names)
    return f"files = [\n{entries}]"


def package(name: str, version: str, *names: str, extra: str = "") -> str:
    head = f'[[package]]\nname = "{name}"\nversion = "{version}"\ndescription = ""\n'
    head += f'optional = false\npython-versions = ">=3.8"\n{files(*names)}\n'
    return head + textwrap.dedent(extra)


POETRY_PACKAGES = {
    block.split('"')[1] + "-" + block.split('"')[3]: block
    for block in [
        package("async-timeout", "4.0.3", "async_timeout-4.0.3-py3-none-any.whl"),
        package(
            "certifi", "2024.2.2", "certifi-2024.2.2-py3-none-any.whl", "certifi-2024.2.2.tar.gz"
        ),
        package("charset-normalizer", "3.3.2", "charset_normalizer-3.3.2-py3-none-any.whl"),
        package(
            "click",
            "8.1.7",
            "click-8.1.7-py3-none-any.whl",
            extra="""
            [package.dependencies]
            colorama = {version = "*", markers = "platform_system == \\"Windows\\""}
            """,
        ),
        package("colorama", "0.4.6", "colorama-0.4.6-py2.py3-none-any.whl"),
        package("exceptiongroup", "1.2.0", "exceptiongroup-1.2.0-py3-none-any.whl"),
        package("idna", "3.6", "idna-3.6-py3-none-any.whl"),
        package("iniconfig", "2.0.0", "iniconfig-2.0.0-py3-none-any.whl"),
        package(
            "numpy",
            "1.24.4",
            "numpy-1.24.4-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "numpy-1.24.4.tar.gz",
        ),
        package(
            "numpy",
            "1.26.4",
            "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "numpy-1.26.4.zip",
            "numpy-1.26.4.tar.gz",
        ),
        package("pysocks", "1.7.1", "PySocks-1.7.1-py3-none-any.whl"),
        package(
            "pytest",
            "8.1.1",
            "pytest-8.1.1-py3-none-any.whl",
            extra="""
            [package.dependencies]
            colorama = {version = "*", markers = "sys_platform == \\"win32\\""}
            exceptiongroup = {version = ">=1.0.0rc8", markers = "python_version < \\"3.11\\""}
            iniconfig = "*"
            tomli = {version = ">=1", markers = "python_version < \\"3.11\\""}

            [package.extras]
            testing = ["argcomplete", "attrs (>=19.2)"]
            """,
        ),
        package(
            "redis",
            "5.0.3",
            "redis-5.0.3-py3-none-any.whl",
            extra="""
            [package.dependencies]
            async-timeout = {version = ">=4.0.3", markers = "python_full_version < \\"3.11.3\\""}

            [package.extras]
            hiredis = ["hiredis (>=1.0.0)"]
            """,
        ),
        package(
            "requests",
            "2.31.0",
            "requests-2.31.0-py3-none-any.whl",
            "requests-2.31.0.tar.gz",
            extra="""
            [package.dependencies]
            certifi = ">=2017.4.17"
            charset-normalizer = ">=2,<4"
            idna = ">=2.5,<4"
            PySocks = {version = ">=1.5.6,<1.5.7 || >1.5.7", optional = true, markers = "extra == \\"socks\\""}
            urllib3 = ">=1.21.1,<3"
            chardet = {version = ">=3.0.2,<6", optional = true, markers = "extra == \\"use-chardet-on-py3\\""}

            [package.extras]
            socks = ["PySocks (>=1.5.6,!=1.5.7)"]
            use-chardet-on-py3 = ["chardet (>=3.0.2,<6)"]
            """,
        ),
        package("tomli", "2.0.1", "tomli-2.0.1-py3-none-any.whl"),
        package(
            "urllib3",
            "2.2.1",
            "urllib3-2.2.1-py3-none-any.whl",
            extra="""
            [package.extras]
            socks = ["pysocks (>=1.5.6,!=1.5.7,<2.0)"]
            """,
        ),
    ]
}


def render(packages: Mapping[str, str]) -> str:
    header = "# This file is automatically @generated by Poetry 1.8.2 and should not be changed.\n"
    metadata = '[metadata]\nlock-version = "2.0"\npython-versions = "^3.9"\ncontent-hash = "abc"\n'
    return "\n".join([header, *packages.values(), metadata])


POETRY_LOCK = render(POETRY_PACKAGES)


class FakeLookup:
    """The index as a dict: (name, filename) → sha256; records what was asked."""

    def __init__(self, missing: Sequence[str] = ()) -> None:
        self.missing = set(missing)
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, name: str, filename: str, sha256: str) -> FileRef:
        self.calls.append((name, filename, sha256))
        if filename in self.missing:
            msg = f"{filename} is not on the index"
            raise ResolutionError(msg)
        return FileRef(url=f"https://files.example/{filename}", filename=filename, sha256=sha256)


def poetry_project(
    tmp_path: Path, lock: str = POETRY_LOCK, pyproject: str = POETRY_PYPROJECT
) -> Path:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "poetry.lock").write_text(lock)
    return tmp_path / "poetry.lock"


def poetry(
    tmp_path: Path,
    *,
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
    lookup: FakeLookup | None = None,
) -> dict[str, list[LockedPackage]]:
    path = poetry_project(tmp_path)
    lookup = lookup or FakeLookup()
    packages = load(path, kind="poetry-lock", extras=extras, groups=groups, lookup=lookup)
    result: dict[str, list[LockedPackage]] = {}
    for p in packages:
        result.setdefault(p.name, []).append(p)
    return result


def test_poetry_main_group_walks_the_graph_from_the_project(tmp_path: Path) -> None:
    packages = poetry(tmp_path)
    assert sorted(packages) == [
        "certifi",
        "charset-normalizer",
        "click",
        "colorama",
        "idna",
        "numpy",
        "pysocks",  # requests[socks] from the project
        "requests",
        "tomli",
        "urllib3",
    ]  # not redis (extra not asked), not pytest/iniconfig/exceptiongroup (dev group)
    assert packages["requests"][0].marker is None
    assert packages["pysocks"][0].marker is None


def test_poetry_windows_only_dependency_does_not_apply_on_linux(tmp_path: Path) -> None:
    colorama = poetry(tmp_path)["colorama"][0]
    assert not applies(colorama, LINUX_39)
    assert applies(colorama, WINDOWS_39)


def test_poetry_python_constraint_of_a_root_dependency_becomes_a_marker(tmp_path: Path) -> None:
    tomli = poetry(tmp_path)["tomli"][0]
    assert applies(tomli, LINUX_39)
    assert not applies(tomli, {**LINUX_39, "python_full_version": "3.11.0"})


def test_poetry_two_versions_of_one_name_each_get_their_marker(tmp_path: Path) -> None:
    numpy = {p.version: p for p in poetry(tmp_path)["numpy"]}
    assert set(numpy) == {"1.24.4", "1.26.4"}
    assert applies(numpy["1.24.4"], LINUX_39)
    assert not applies(numpy["1.24.4"], LINUX_312)
    assert applies(numpy["1.26.4"], LINUX_312)
    assert not applies(numpy["1.26.4"], LINUX_39)


def test_poetry_files_get_urls_from_the_lookup(tmp_path: Path) -> None:
    lookup = FakeLookup()
    numpy = {p.version: p for p in poetry(tmp_path, lookup=lookup)["numpy"]}
    new = numpy["1.26.4"]
    assert [w.filename for w in new.wheels] == [
        "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ]
    assert new.sdist is not None
    assert new.sdist.filename == "numpy-1.26.4.tar.gz"  # preferred over the .zip
    assert new.sdist.url == "https://files.example/numpy-1.26.4.tar.gz"
    assert ("requests", "requests-2.31.0.tar.gz", SHA) in lookup.calls
    assert not any(name == "redis" for name, _, _ in lookup.calls)  # only what is selected


def test_poetry_extra_adds_optional_packages_with_their_markers(tmp_path: Path) -> None:
    packages = poetry(tmp_path, extras=["cache"])
    assert packages["redis"][0].marker is None
    timeout = packages["async-timeout"][0]
    assert applies(timeout, LINUX_39)
    assert not applies(timeout, LINUX_312)


def test_poetry_dev_group_is_added_and_markers_are_or_ed_over_paths(tmp_path: Path) -> None:
    packages = poetry(tmp_path, groups=["dev"])
    assert {"pytest", "iniconfig", "exceptiongroup"} <= set(packages)
    colorama = packages["colorama"][0]
    assert colorama.marker is not None
    assert "win32" in colorama.marker
    assert "Windows" in colorama.marker
    assert applies(colorama, {**LINUX_39, "sys_platform": "win32"})  # pytest's path alone
    assert applies(colorama, {**LINUX_39, "platform_system": "Windows"})  # click's path alone
    assert not applies(colorama, LINUX_39)
    assert applies(packages["exceptiongroup"][0], LINUX_39)
    assert not applies(packages["exceptiongroup"][0], LINUX_312)


def test_poetry_unknown_extra_and_group_list_the_declared_ones(tmp_path: Path) -> None:
    with pytest.raises(RequirementSyntaxError, match=r"no extra 'fast' \(declared: cache\)"):
        poetry(tmp_path, extras=["fast"])
    with pytest.raises(RequirementSyntaxError, match=r"'lint' \(declared: dev, docs, main\)"):
        poetry(tmp_path, groups=["lint"])


def test_poetry_dependency_missing_from_the_lock_asks_for_a_relock(tmp_path: Path) -> None:
    pyproject = POETRY_PYPROJECT.replace('click = "^8.1"', 'click = "^8.1"\nattrs = "^23"')
    with pytest.raises(ResolutionError, match="does not lock") as info:
        load(poetry_project(tmp_path, pyproject=pyproject), kind="poetry-lock", lookup=FakeLookup())
    assert "attrs" in str(info.value)
    assert info.value.hint is not None
    assert "poetry lock" in info.value.hint


def test_poetry_file_unknown_to_the_index_fails_naming_it(tmp_path: Path) -> None:
    lookup = FakeLookup(missing=["idna-3.6-py3-none-any.whl"])
    with pytest.raises(ResolutionError, match=r"idna-3\.6-py3-none-any\.whl"):
        poetry(tmp_path, lookup=lookup)


def test_poetry_git_source_of_a_selected_package_is_not_supported(tmp_path: Path) -> None:
    source = (
        '[package.source]\ntype = "git"\nurl = "https://github.com/kjd/idna"\nreference = "v3.6"\n'
    )
    lock = render({**POETRY_PACKAGES, "idna-3.6": package("idna", "3.6", extra=source)})
    with pytest.raises(ResolutionError, match="idna comes from a git source"):
        load(poetry_project(tmp_path, lock=lock), kind="poetry-lock", lookup=FakeLookup())


def test_poetry_non_sha256_hash_is_refused(tmp_path: Path) -> None:
    lock = POETRY_LOCK.replace(
        f'{{file = "idna-3.6-py3-none-any.whl", hash = "sha256:{SHA}"}}',
        '{file = "idna-3.6-py3-none-any.whl", hash = "md5:abc"}',
    )
    with pytest.raises(RequirementSyntaxError, match="no sha256"):
        load(poetry_project(tmp_path, lock=lock), kind="poetry-lock", lookup=FakeLookup())


def test_poetry_lock_needs_its_pyproject(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK)
    with pytest.raises(RequirementsFileNotFoundError, match=r"pyproject\.toml"):
        load(tmp_path / "poetry.lock", kind="poetry-lock", lookup=FakeLookup())


PEP621_PYPROJECT = """\
[project]
name = "app"
version = "1.0"
requires-python = ">=3.9"
dependencies = ["requests[socks]>=2.31", "click>=8"]

[project.optional-dependencies]
cache = ["redis>=5"]
all = ["app[cache]"]

[dependency-groups]
test = ["pytest>=8"]
"""


def test_poetry_2_project_table_extras_self_reference_and_pep735_groups(tmp_path: Path) -> None:
    lock = POETRY_LOCK.replace('lock-version = "2.0"', 'lock-version = "2.1"')
    (tmp_path / "pyproject.toml").write_text(PEP621_PYPROJECT)
    (tmp_path / "poetry.lock").write_text(lock)
    packages = by_name(
        load(
            tmp_path / "poetry.lock",
            kind="poetry-lock",
            extras=["all"],
            groups=["test"],
            lookup=FakeLookup(),
        )
    )
    assert {"redis", "async-timeout", "pytest", "pysocks", "requests"} <= set(packages)
    assert "numpy" not in packages
    assert not applies(packages["colorama"], LINUX_39)


# --- requirements_from_pyproject ------------------------------------------------------------

PYPROJECT = """\
[project]
name = "My_App"
version = "1.0"
dependencies = [
    "requests>=2.31",
    "Click==8.1.7; python_version < '3.12'",
]

[project.optional-dependencies]
S3 = ["boto3>=1.28"]
fast = ["orjson"]
all = ["my-app[s3,fast]; sys_platform == 'linux'"]

[dependency-groups]
test = ["pytest>=8", {include-group = "typing"}]
typing = ["mypy==1.10"]
loop-a = [{include-group = "loop-b"}]
loop-b = [{include-group = "loop-a"}]
"""


def from_pyproject(tmp_path: Path, text: str = PYPROJECT, **kwargs: Sequence[str]) -> list[str]:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    result = requirements_from_pyproject(
        path, extras=kwargs.get("extras", ()), groups=kwargs.get("groups", ()), env={}
    )
    return [line.specifier for line in result.requirements]


def test_pyproject_dependencies_are_normalized_requirement_lines(tmp_path: Path) -> None:
    assert from_pyproject(tmp_path) == [
        "requests>=2.31",
        'click==8.1.7; python_version < "3.12"',
    ]


def test_pyproject_extras_are_added_and_compared_normalized(tmp_path: Path) -> None:
    assert from_pyproject(tmp_path, extras=["s3"])[2:] == ["boto3>=1.28"]


def test_pyproject_self_referencing_extra_expands_with_its_marker(tmp_path: Path) -> None:
    added = from_pyproject(tmp_path, extras=["all"])[2:]
    assert added == ['orjson; sys_platform == "linux"', 'boto3>=1.28; sys_platform == "linux"']


def test_pyproject_groups_follow_include_group(tmp_path: Path) -> None:
    assert from_pyproject(tmp_path, groups=["test"])[2:] == ["pytest>=8", "mypy==1.10"]


def test_pyproject_group_include_cycle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RequirementSyntaxError, match="loop-a -> loop-b -> loop-a"):
        from_pyproject(tmp_path, groups=["loop-a"])


def test_pyproject_unknown_extra_or_group_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(RequirementSyntaxError, match=r"no extra 'gpu' \(declared: all, fast, s3\)"):
        from_pyproject(tmp_path, extras=["gpu"])
    with pytest.raises(
        RequirementSyntaxError, match=r"'lint' \(declared: loop-a, loop-b, test, typing\)"
    ):
        from_pyproject(tmp_path, groups=["lint"])


def test_pyproject_errors_carry_the_toml_key_as_origin(tmp_path: Path) -> None:
    text = PYPROJECT.replace('"requests>=2.31",', '"requests>=2.31",\n    "bad name!!",')
    with pytest.raises(RequirementSyntaxError) as info:
        from_pyproject(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'pyproject.toml'}:project.dependencies[1]:")
    text = PYPROJECT.replace('"mypy==1.10"', '"mypy==="')
    with pytest.raises(RequirementSyntaxError, match=r"dependency-groups\.typing\[0\]"):
        from_pyproject(tmp_path, text, groups=["typing"])


def test_pyproject_origins_of_lines(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    result = requirements_from_pyproject(path, extras=["fast"], groups=["typing"], env={})
    assert [line.origin.removeprefix(str(path)) for line in result.requirements] == [
        ":project.dependencies[0]",
        ":project.dependencies[1]",
        ":project.optional-dependencies.fast[0]",
        ":dependency-groups.typing[0]",
    ]
    assert result.index_url is None
    assert result.constraints == ()


def test_pyproject_without_project_table_declares_no_dependencies(tmp_path: Path) -> None:
    with pytest.raises(RequirementSyntaxError, match="declares no dependencies"):
        from_pyproject(tmp_path, '[tool.poetry]\nname = "x"\n')
    assert from_pyproject(tmp_path, '[dependency-groups]\nrun = ["six"]\n', groups=["run"]) == [
        "six"
    ]


def test_pyproject_dynamic_dependencies_cannot_be_read(tmp_path: Path) -> None:
    text = '[project]\nname = "x"\nversion = "1"\ndynamic = ["dependencies"]\n'
    with pytest.raises(RequirementSyntaxError, match="dynamic"):
        from_pyproject(tmp_path, text)


def test_missing_pyproject_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(RequirementsFileNotFoundError):
        requirements_from_pyproject(tmp_path / "pyproject.toml", extras=(), groups=(), env={})
