"""The settings cascade: defaults < [tool.nativebuild] < NATIVEBUILD_* < command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from nativebuild import targets
from nativebuild.archive.layout import FunctionSpec, Kind, LayerLayout
from nativebuild.archive.slim import RULES
from nativebuild.config.settings import (
    KEYS,
    Builder,
    Settings,
    env_name,
    load_tool_table,
    resolve,
)
from nativebuild.errors import ConfigError
from nativebuild.targets import Architecture, GlibcVersion

X86, ARM = Architecture.X86_64, Architecture.ARM64


@dataclasses.dataclass(frozen=True)
class Dirs:
    project: Path
    cwd: Path


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    root = tmp_path.resolve()
    project, cwd = root / "project", root / "cwd"
    project.mkdir()
    cwd.mkdir()
    return Dirs(project=project, cwd=cwd)


def run(
    dirs: Dirs,
    *,
    file: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> Settings:
    return resolve(
        cli=cli or {},
        file_table=file or {},
        env=env or {},
        project_dir=dirs.project,
        cwd=dirs.cwd,
    )


def test_env_names() -> None:
    assert env_name("runtime") == "NATIVEBUILD_RUNTIME"
    assert env_name("cache-dir") == "NATIVEBUILD_CACHE_DIR"
    assert env_name("build-image") == "NATIVEBUILD_BUILD_IMAGE"


def test_defaults(dirs: Dirs) -> None:
    settings = run(dirs)
    assert settings.runtime == "python3.12"
    assert settings.archs == (X86,)
    assert settings.requirements == dirs.project / "requirements.txt"
    assert settings.output == dirs.project / "dist"
    assert settings.src is None
    assert settings.cache_dir is None
    assert settings.build_image is None
    assert settings.runtime_image is None
    assert settings.glibc is None
    assert settings.name == "function"


# key, attribute, (file value, env value, cli value), (expected from file, env, cli) where a
# callable expectation receives the Dirs (paths depend on which directory is the base).
def _p(base: str, rel: str) -> Any:
    return lambda d: getattr(d, base) / rel


CASCADE = [
    (
        "runtime",
        "runtime",
        ("python3.9", "python3.10", "python3.11"),
        ("python3.9", "python3.10", "python3.11"),
    ),
    (
        "arch",
        "archs",
        (["arm64"], "x86_64,arm64", ["arm64", "x86_64"]),
        ((ARM,), (X86, ARM), (ARM, X86)),
    ),
    (
        "requirements",
        "requirements",
        ("reqs/file.txt", "env.txt", "cli.txt"),
        (_p("project", "reqs/file.txt"), _p("cwd", "env.txt"), _p("cwd", "cli.txt")),
    ),
    (
        "src",
        "src",
        ("app", "env-src", "cli-src"),
        (_p("project", "app"), _p("cwd", "env-src"), _p("cwd", "cli-src")),
    ),
    (
        "output",
        "output",
        ("out", "env-out", "cli-out"),
        (_p("project", "out"), _p("cwd", "env-out"), _p("cwd", "cli-out")),
    ),
    (
        "cache-dir",
        "cache_dir",
        (".cache", "env-cache", "cli-cache"),
        (_p("project", ".cache"), _p("cwd", "env-cache"), _p("cwd", "cli-cache")),
    ),
    (
        "build-image",
        "build_image",
        ("file/build:{arch}", "env/build:{arch}", "cli/build:{arch}"),
        ("file/build:{arch}", "env/build:{arch}", "cli/build:{arch}"),
    ),
    (
        "runtime-image",
        "runtime_image",
        ("file/run:{arch}", "env/run:{arch}", "cli/run:{arch}"),
        ("file/run:{arch}", "env/run:{arch}", "cli/run:{arch}"),
    ),
    (
        "glibc",
        "glibc",
        ("2.28", "2.31", "2.17"),
        (
            GlibcVersion(major=2, minor=28),
            GlibcVersion(major=2, minor=31),
            GlibcVersion(major=2, minor=17),
        ),
    ),
    ("name", "name", ("from-file", "from-env", "from-cli"), ("from-file", "from-env", "from-cli")),
    (
        "extras",
        "extras",
        (["fast"], "fast,slow", ["cli"]),
        (("fast",), ("fast", "slow"), ("cli",)),
    ),
    (
        "groups",
        "groups",
        (["lambda"], "a,b", ["cli"]),
        (("lambda",), ("a", "b"), ("cli",)),
    ),
    ("jobs", "jobs", (3, "2", 1), (3, 2, 1)),
    (
        "cache",
        "cache",
        ("s3://file-bucket/p", "s3://env-bucket", "s3://cli-bucket/x/y"),
        ("s3://file-bucket/p", "s3://env-bucket", "s3://cli-bucket/x/y"),
    ),
    (
        "cache-endpoint-url",
        "cache_endpoint_url",
        ("http://127.0.0.1:9000", "https://r2.example.com", "http://minio:9000"),
        ("http://127.0.0.1:9000", "https://r2.example.com", "http://minio:9000"),
    ),
    ("cache-only", "cache_only", (True, "0", True), (True, False, True)),
    ("cache-readonly", "cache_readonly", (True, "false", "yes"), (True, False, True)),
    ("no-cache", "no_cache", (True, "off", True), (True, False, True)),
    (
        "builders",
        "builders",
        (
            {"arm64": {"host": "ssh://g", "network": "host"}},
            "arm64=tcp://e:2376",
            ["x86_64=unix:///run/x.sock"],
        ),
        (
            (Builder(arch=ARM, host="ssh://g", network="host"),),
            (Builder(arch=ARM, host="tcp://e:2376"),),
            (Builder(arch=X86, host="unix:///run/x.sock"),),
        ),
    ),
    ("kind", "kind", ("layer", "image", "function"), (Kind.LAYER, Kind.IMAGE, Kind.FUNCTION)),
    (
        "layer-layout",
        "layer_layout",
        ("site-packages", "python", "site-packages"),
        (LayerLayout.SITE_PACKAGES, LayerLayout.PYTHON, LayerLayout.SITE_PACKAGES),
    ),
    ("compile", "compile", (True, "0", True), (True, False, True)),
    ("slim", "slim", (["tests"], "docs,strip", ["all"]), (("tests",), ("docs", "strip"), RULES)),
    ("include", "include", (["a/**"], "b,*.pyi", ["d/"]), (("a/**",), ("b", "*.pyi"), ("d/",))),
    ("exclude", "exclude", (["a/**"], "b,*.pyi", ["d/"]), (("a/**",), ("b", "*.pyi"), ("d/",))),
    (
        "with-layers",
        "with_layers",
        (["l.zip"], "m.zip,n.zip", ["o.zip"]),
        (
            lambda d: (d.project / "l.zip",),
            lambda d: (d.cwd / "m.zip", d.cwd / "n.zip"),
            lambda d: (d.cwd / "o.zip",),
        ),
    ),
    (
        "functions",
        "functions",
        (
            [{"name": "a", "requirements": "a.txt"}],
            '[{"name": "b", "requirements": "b.txt"}]',
            [{"name": "c", "requirements": "c.txt", "src": "c"}],
        ),
        (
            lambda d: (FunctionSpec(name="a", requirements=d.project / "a.txt"),),
            lambda d: (FunctionSpec(name="b", requirements=d.cwd / "b.txt"),),
            lambda d: (FunctionSpec(name="c", requirements=d.cwd / "c.txt", src=d.cwd / "c"),),
        ),
    ),
    (
        "handler",
        "handler",
        ("app.handler", "pkg.mod.main", "src/app.lambda_handler"),
        ("app.handler", "pkg.mod.main", "src/app.lambda_handler"),
    ),
    ("load", "load", (True, "0", True), (True, False, True)),
    ("check", "check", (False, "1", False), (False, True, False)),
    ("repair", "repair", (False, "yes", False), (False, True, False)),
    ("verify", "verify", (True, "0", True), (True, False, True)),
    (
        "build-packages",
        "build_packages",
        (["libpq-dev"], "libyaml-dev patchelf", ["gcc"]),
        (("libpq-dev",), ("libyaml-dev", "patchelf"), ("gcc",)),
    ),
    (
        "before-build",
        "before_build",
        (["echo a"], "echo b && echo c", ["true"]),
        (("echo a",), ("echo b && echo c",), ("true",)),
    ),
]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("build-packages", ["libpq-dev; rm -rf /"]),
        ("build-packages", [3]),
        ("check", "maybe"),
        ("handler", "app"),
        ("handler", "app.handler()"),
        ("handler", "../app.handler"),
        ("load", "perhaps"),
    ],
)
def test_abi_options_refuse_bad_values(dirs: Dirs, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        run(dirs, file={key: value})


def _expect(value: Any, dirs: Dirs) -> Any:
    return value(dirs) if callable(value) else value


def test_cascade_covers_every_key() -> None:
    assert sorted(row[0] for row in CASCADE) == sorted(KEYS)


@pytest.mark.parametrize(("key", "attr", "values", "expected"), CASCADE)
def test_cascade_order(
    dirs: Dirs, key: str, attr: str, values: tuple[Any, Any, Any], expected: tuple[Any, Any, Any]
) -> None:
    file_value, env_value, cli_value = values
    from_file, from_env, from_cli = (_expect(e, dirs) for e in expected)
    default = getattr(run(dirs), attr)
    assert default != from_file  # otherwise the first step proves nothing

    assert getattr(run(dirs, file={key: file_value}), attr) == from_file
    env = {env_name(key): env_value}
    assert getattr(run(dirs, env=env), attr) == from_env
    assert getattr(run(dirs, file={key: file_value}, env=env), attr) == from_env
    cli = {key: cli_value}
    assert getattr(run(dirs, cli=cli), attr) == from_cli
    assert getattr(run(dirs, file={key: file_value}, env=env, cli=cli), attr) == from_cli
    assert getattr(run(dirs, file={key: file_value}, cli=cli), attr) == from_cli


@pytest.mark.parametrize(("key", "attr", "values", "expected"), CASCADE)
def test_unset_layers_do_not_override(
    dirs: Dirs, key: str, attr: str, values: tuple[Any, Any, Any], expected: tuple[Any, Any, Any]
) -> None:
    """A flag that was not given (None) and an empty variable leave the lower layer alone."""
    file_value = values[0]
    from_file = _expect(expected[0], dirs)
    settings = run(dirs, file={key: file_value}, env={env_name(key): ""}, cli={key: None})
    assert getattr(settings, attr) == from_file


def test_each_layer_only_touches_its_own_keys(dirs: Dirs) -> None:
    settings = run(
        dirs,
        file={"runtime": "python3.9", "name": "file-name"},
        env={"NATIVEBUILD_ARCH": "arm64"},
        cli={"output": "built"},
    )
    assert settings.runtime == "python3.9"
    assert settings.name == "file-name"
    assert settings.archs == (ARM,)
    assert settings.output == dirs.cwd / "built"
    assert settings.requirements == dirs.project / "requirements.txt"


def test_absolute_paths_stay_absolute(dirs: Dirs, tmp_path: Path) -> None:
    elsewhere = tmp_path.resolve() / "elsewhere" / "reqs.txt"
    assert run(dirs, file={"requirements": str(elsewhere)}).requirements == elsewhere
    assert run(dirs, cli={"requirements": str(elsewhere)}).requirements == elsewhere


def test_paths_expand_the_home_directory(
    dirs: Dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path.resolve() / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert run(dirs, file={"cache-dir": "~/nbcache"}).cache_dir == home / "nbcache"


def test_paths_are_normalised(dirs: Dirs) -> None:
    settings = run(dirs, file={"output": "sub/../dist2"})
    assert settings.output == dirs.project / "dist2"


def test_runtime_is_canonicalised(dirs: Dirs) -> None:
    assert run(dirs, cli={"runtime": " Python3.13 "}).runtime == "python3.13"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arm64", (ARM,)),
        ("aarch64", (ARM,)),
        ("x86_64, arm64", (X86, ARM)),
        ("arm64,x86_64", (ARM, X86)),
        ("x86_64,amd64", (X86,)),
        (["amd64", "aarch64"], (X86, ARM)),
        (["arm64", "arm64"], (ARM,)),
        (("x86_64",), (X86,)),
    ],
)
def test_arch_forms(dirs: Dirs, value: Any, expected: tuple[Architecture, ...]) -> None:
    assert run(dirs, file={"arch": value}).archs == expected


def test_arch_comma_string_in_env(dirs: Dirs) -> None:
    assert run(dirs, env={"NATIVEBUILD_ARCH": "arm64,x86_64"}).archs == (ARM, X86)


def test_arch_list_on_the_command_line(dirs: Dirs) -> None:
    assert run(dirs, cli={"arch": ["x86_64", "arm64"]}).archs == (X86, ARM)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("runtme", "runtime"),
        ("cache_dir", "cache-dir"),
        ("archs", "arch"),
        ("buildimage", "build-image"),
    ],
)
def test_unknown_file_key_suggests(dirs: Dirs, key: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"Perhaps you meant {suggestion!r}") as info:
        run(dirs, file={key: "x"})
    assert repr(key) in str(info.value)
    assert str(dirs.project / "pyproject.toml") in str(info.value)
    assert info.value.hint is not None
    assert "runtime" in info.value.hint


def test_unknown_file_key_without_close_match(dirs: Dirs) -> None:
    with pytest.raises(ConfigError, match="Unknown key 'zzzzzz'") as info:
        run(dirs, file={"zzzzzz": "x"})
    assert "Perhaps" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("NATIVEBUILD_RUNTIM", "NATIVEBUILD_RUNTIME"),
        ("NATIVEBUILD_CACHEDIR", "NATIVEBUILD_CACHE_DIR"),
    ],
)
def test_unknown_env_var(dirs: Dirs, name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"Unknown environment variable {name}") as info:
        run(dirs, env={name: "x"})
    assert f"Perhaps you meant {suggestion!r}" in str(info.value)


def test_unknown_env_var_fails_even_when_empty(dirs: Dirs) -> None:
    with pytest.raises(ConfigError):
        run(dirs, env={"NATIVEBUILD_BOGUS": ""})


def test_keep_container_and_foreign_variables_are_allowed(dirs: Dirs) -> None:
    settings = run(
        dirs, env={"NATIVEBUILD_KEEP_CONTAINER": "1", "PATH": "/usr/bin", "BUILD_RUNTIME": "x"}
    )
    assert settings == run(dirs)


def test_unknown_cli_key(dirs: Dirs) -> None:
    with pytest.raises(ConfigError, match=r"Unknown setting 'runtim'.*Perhaps you meant 'runtime'"):
        run(dirs, cli={"runtim": "python3.9"})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("runtime", 3, "runtime .* must be a non-empty string"),
        ("runtime", "python3.8", "Unknown runtime"),
        ("runtime", "", "must be a non-empty string"),
        ("name", "   ", "must be a non-empty string"),
        ("name", ["a"], "must be a non-empty string"),
        ("requirements", 1, "requirements .* must be a non-empty string"),
        ("output", True, "must be a non-empty string"),
        ("build-image", {"x86_64": "a"}, "must be a non-empty string"),
        ("glibc", 2.26, "must be a non-empty string"),
        ("glibc", "2.26.1", "Invalid glibc version"),
        ("arch", 64, "arch .* must be x86_64, arm64, or a list"),
        ("arch", [], "arch .* must be x86_64, arm64, or a list"),
        ("arch", [64], "must be a non-empty string"),
        ("arch", "sparc", "Unknown architecture"),
        ("arch", "x86_64,", "must be a non-empty string"),
    ],
)
def test_wrong_values_in_the_file(dirs: Dirs, key: str, value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        run(dirs, file={key: value})
    assert info.value.exit_code == 2


def test_wrong_value_names_its_origin(dirs: Dirs) -> None:
    with pytest.raises(ConfigError, match=r"pyproject\.toml \[tool\.nativebuild\]"):
        run(dirs, file={"runtime": 3})
    with pytest.raises(ConfigError, match="the environment"):
        run(dirs, env={"NATIVEBUILD_ARCH": " , "})
    with pytest.raises(ConfigError, match="the command line"):
        run(dirs, cli={"name": ""})


def test_a_bad_lower_layer_fails_even_when_overridden(dirs: Dirs) -> None:
    """A mistake in pyproject.toml is reported, not hidden by a flag that happens to win."""
    with pytest.raises(ConfigError):
        run(dirs, file={"runtime": 3}, cli={"runtime": "python3.9"})


# --- pyproject.toml ------------------------------------------------------------------------


def test_load_tool_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n\n[tool.nativebuild]\nruntime = "python3.9"\n'
        'arch = ["x86_64", "arm64"]\n',
        encoding="utf-8",
    )
    assert load_tool_table(pyproject) == {"runtime": "python3.9", "arch": ["x86_64", "arm64"]}


def test_load_tool_table_missing_file(tmp_path: Path) -> None:
    assert load_tool_table(tmp_path / "pyproject.toml") == {}


def test_load_tool_table_without_the_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.ruff]\nline-length = 100\n", encoding="utf-8")
    assert load_tool_table(pyproject) == {}


@pytest.mark.parametrize(
    "text",
    ['[tool.nativebuild\nruntime = "python3.9"\n', "[tool.nativebuild]\nruntime = python3.9\n"],
)
def test_load_tool_table_broken_toml(tmp_path: Path, text: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="Cannot read") as info:
        load_tool_table(pyproject)
    assert str(pyproject) in str(info.value)
    assert info.value.hint is not None


def test_load_tool_table_not_utf8(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(b'[tool.nativebuild]\nname = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="Cannot read"):
        load_tool_table(pyproject)


def test_load_tool_table_not_a_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool]\nnativebuild = "python3.9"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"must be a table"):
        load_tool_table(pyproject)


def test_file_table_from_disk_feeds_the_cascade(dirs: Dirs) -> None:
    (dirs.project / "pyproject.toml").write_text(
        '[tool.nativebuild]\nrequirements = "deps/requirements.txt"\narch = "arm64"\n',
        encoding="utf-8",
    )
    settings = run(dirs, file=load_tool_table(dirs.project / "pyproject.toml"))
    assert settings.requirements == dirs.project / "deps" / "requirements.txt"
    assert settings.archs == (ARM,)


# --- targets -------------------------------------------------------------------------------


def test_targets_one_per_arch_with_runtime_defaults(dirs: Dirs) -> None:
    settings = run(dirs, cli={"runtime": "python3.11", "arch": ["x86_64", "arm64"]})
    x86, arm = settings.targets()
    assert (x86.arch, arm.arch) == (X86, ARM)
    for target in (x86, arm):
        assert target.runtime.name == "python3.11"
        assert target.glibc == GlibcVersion(major=2, minor=26)
    assert x86.build_image == "public.ecr.aws/sam/build-python3.11:latest-x86_64"
    assert arm.build_image == "public.ecr.aws/sam/build-python3.11:latest-arm64"
    assert x86.runtime_image == "public.ecr.aws/lambda/python:3.11-x86_64"
    assert arm.runtime_image == "public.ecr.aws/lambda/python:3.11-arm64"


def test_targets_apply_glibc_and_image_overrides(dirs: Dirs) -> None:
    settings = run(
        dirs,
        file={"runtime": "python3.12", "arch": ["x86_64", "arm64"]},
        env={"NATIVEBUILD_GLIBC": "2.31", "NATIVEBUILD_BUILD_IMAGE": "local/build:{arch}"},
        cli={"runtime-image": "local/run:py312"},
    )
    targets_ = settings.targets()
    assert len(targets_) == 2
    for target in targets_:
        assert target.glibc == GlibcVersion(major=2, minor=31)
        assert target.platform_tags[0] == f"manylinux_2_31_{target.arch.machine}"
        assert target.build_image == f"local/build:{target.arch.value}"
        assert target.runtime_image == "local/run:py312"


def test_targets_pin_default_images_by_digest(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "0f" * 32
    ref = "public.ecr.aws/sam/build-python3.12:latest-arm64"
    monkeypatch.setattr(targets, "pinned_digests", lambda: {ref: digest})
    (target,) = run(dirs, cli={"arch": ["arm64"]}).targets()
    assert target.build_image == f"{ref}@{digest}"


def test_targets_refuse_an_unknown_runtime() -> None:
    with pytest.raises(ConfigError, match="Unknown runtime"):
        Settings(runtime="python2.7").targets()
