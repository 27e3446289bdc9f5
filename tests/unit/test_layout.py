"""Layouts: which archives a build writes, where each file of a wheel lands in a function or a
layer, and how several functions' requirements become one layer (or a clear conflict)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nativebuild.archive.layout import (
    FunctionSpec,
    Kind,
    LayerLayout,
    archive_specs,
    budget_groups,
    check_functions,
    pin_conflicts,
    union_requirements_text,
)
from nativebuild.archive.plan import plan_archive
from nativebuild.archive.wheels import Scheme, install_target
from nativebuild.config import archive_keys as archive_options
from nativebuild.errors import ArchiveError, ConfigError, ResolutionError
from nativebuild.inputs.requirements import parse_requirements
from tests.wheelfactory import make_tree, make_wheel


def specs(kind: Kind, functions: tuple[FunctionSpec, ...] = (), **kwargs: object):  # type: ignore[no-untyped-def]
    arguments = {
        "kind": kind, "name": "app", "src": Path("/src"), "functions": functions,
        "layer_layout": LayerLayout.PYTHON, "runtime": "python3.12", "python": "3.12",
        "arch": "arm64", **kwargs,
    }  # fmt: skip
    return archive_specs(**arguments)  # type: ignore[arg-type]


# --- which archives ----------------------------------------------------------------------------


def test_function_kind_is_one_archive_with_everything_at_the_root() -> None:
    (function,) = specs(Kind.FUNCTION)
    assert function.filename == "app-python3.12-arm64.zip"
    assert (function.kind, function.dependencies, function.src) == ("function", True, Path("/src"))
    assert (function.site_prefix, function.src_prefix, function.mount) == ("", "", "/var/task")


def test_layer_kind_puts_packages_and_source_under_python() -> None:
    (layer,) = specs(Kind.LAYER)
    assert layer.filename == "app-layer-python3.12-arm64.zip"
    assert (layer.kind, layer.mount, layer.dependencies) == ("layer", "/opt", True)
    assert layer.site_prefix == layer.src_prefix == "python/"
    assert layer.src == Path("/src")


def test_site_packages_layout_names_the_python_version() -> None:
    (layer,) = specs(Kind.LAYER, layer_layout=LayerLayout.SITE_PACKAGES, python="3.9")
    assert layer.site_prefix == "python/lib/python3.9/site-packages/"


def test_split_writes_a_dependencies_layer_and_a_code_only_function() -> None:
    layer, function = specs(Kind.SPLIT)
    assert (layer.kind, layer.dependencies, layer.src) == ("layer", True, None)
    assert (function.kind, function.dependencies, function.src) == ("function", False, Path("/src"))
    assert function.layers == (layer.filename,)


def test_split_with_functions_shares_one_layer() -> None:
    functions = (
        FunctionSpec(name="orders", requirements=Path("o.txt"), src=Path("/o")),
        FunctionSpec(name="billing", requirements=Path("b.txt"), src=Path("/b")),
    )
    layer, orders, billing = specs(Kind.SPLIT, functions, src=None)
    assert [s.filename for s in (orders, billing)] == [
        "orders-python3.12-arm64.zip",
        "billing-python3.12-arm64.zip",
    ]
    assert (orders.src, billing.src) == (Path("/o"), Path("/b"))
    assert orders.layers == billing.layers == (layer.filename,)
    assert budget_groups([layer, orders, billing]) == [(orders, layer), (billing, layer)]


def test_layer_kind_with_functions_is_the_shared_layer_alone() -> None:
    functions = (FunctionSpec(name="f", requirements=Path("f.txt"), src=Path("/f")),)
    (layer,) = specs(Kind.LAYER, functions, src=None)
    assert layer.src is None
    assert budget_groups([layer]) == [(layer,)]


def test_function_kind_refuses_several_functions() -> None:
    functions = (FunctionSpec(name="f", requirements=Path("f.txt")),)
    with pytest.raises(ConfigError, match='kind = "split"'):
        specs(Kind.FUNCTION, functions)


@pytest.mark.parametrize(
    ("functions", "src", "match"),
    [
        ((FunctionSpec(name="a b", requirements=Path("r")),), None, "letters, digits"),
        ((FunctionSpec(name="../x", requirements=Path("r")),), None, "letters, digits"),
        (
            (FunctionSpec(name="a", requirements=Path("r")),) * 2,
            None,
            "Two functions are called 'a'",
        ),
        ((FunctionSpec(name="a", requirements=Path("r")),), Path("/src"), "both at the top"),
    ],
)
def test_function_table_errors(
    functions: tuple[FunctionSpec, ...], src: Path | None, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_functions(functions, src=src)


# --- where files go ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("pkg/mod.py", ("pkg/mod.py", Scheme.SITE)),
        ("demo-1.0.data/purelib/pkg/a.py", ("pkg/a.py", Scheme.SITE)),
        ("demo-1.0.data/platlib/pkg/_c.so", ("pkg/_c.so", Scheme.SITE)),
        ("demo-1.0.data/scripts/run", ("bin/run", Scheme.SCRIPTS)),
        ("demo-1.0.data/data/lib/libdemo.so.1", ("lib/libdemo.so.1", Scheme.DATA)),
        ("demo-1.0.data/headers/demo.h", ("include/demo/demo.h", Scheme.HEADERS)),
    ],
)
def test_install_schemes(member: str, expected: tuple[str, Scheme]) -> None:
    assert install_target(member, data_dir="demo-1.0.data", dist_name="demo") == expected


@pytest.fixture
def native_wheel(tmp_path: Path) -> Path:
    """A wheel with a module, an extension, a script, a native library and a header."""
    return make_wheel(
        tmp_path / "wheels", "demo", "1.0",
        {"demo/__init__.py": "", "demo/_ext.so": b"\x7fELF"},
        tag="cp312-cp312-manylinux_2_17_x86_64",
        data_files={
            "scripts/demo-run": "#!python\n", "data/lib/libdemo.so.1": b"\x7fELF lib",
            "headers/demo.h": "int x;\n",
        },
        executable={"scripts/demo-run"},
    )  # fmt: skip


@pytest.mark.parametrize(
    "prefix", ["python/", "python/lib/python3.12/site-packages/"], ids=["python", "site-packages"]
)
def test_layer_keeps_libs_bin_and_headers_at_the_root(
    native_wheel: Path, tmp_path: Path, prefix: str
) -> None:
    src = make_tree(tmp_path / "src", {"shared/util.py": "X = 1\n"})
    plan = plan_archive([native_wheel], src, python="3.12", site_prefix=prefix, src_prefix=prefix)
    paths = [entry.path for entry in plan.entries]
    assert paths == sorted(paths)
    assert f"{prefix}demo/__init__.py" in paths
    assert f"{prefix}demo/_ext.so" in paths
    assert f"{prefix}demo-1.0.dist-info/RECORD" in paths
    assert f"{prefix}shared/util.py" in paths
    assert "lib/libdemo.so.1" in paths  # /opt/lib: on LD_LIBRARY_PATH
    assert "bin/demo-run" in paths  # /opt/bin: on PATH
    assert "include/demo/demo.h" in paths
    owners = {entry.path: entry.owner for entry in plan.entries}
    assert owners[f"{prefix}demo/_ext.so"] == "demo 1.0"
    assert owners[f"{prefix}shared/util.py"] == ""


def test_function_layout_is_unchanged_by_the_schemes(native_wheel: Path) -> None:
    paths = [e.path for e in plan_archive([native_wheel], None, python="3.12").entries]
    assert {"demo/__init__.py", "lib/libdemo.so.1", "bin/demo-run"} <= set(paths)


@pytest.mark.parametrize("prefix", ["/abs/", "python", "../python/", "python/./"])
def test_unsafe_prefixes_are_refused(native_wheel: Path, prefix: str) -> None:
    with pytest.raises(ConfigError):
        plan_archive([native_wheel], None, python="3.12", site_prefix=prefix)


def test_source_and_layer_package_clash_is_named(native_wheel: Path, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"demo/__init__.py": ""})
    with pytest.raises(ArchiveError, match=r"demo/__init__\.py which the wheel"):
        plan_archive(
            [native_wheel], src, python="3.12", site_prefix="python/", src_prefix="python/"
        )


# --- several functions, one layer --------------------------------------------------------------


def requirement_sets(tmp_path: Path, files: dict[str, str]):  # type: ignore[no-untyped-def]
    return {
        name: parse_requirements(make_tree(tmp_path / name, {"r.txt": text}) / "r.txt", env={})
        for name, text in files.items()
    }


def test_union_includes_every_function_file(tmp_path: Path) -> None:
    functions = [
        FunctionSpec(name="a", requirements=tmp_path / "a" / "requirements.txt"),
        FunctionSpec(name="b", requirements=tmp_path / "b" / "reqs.in"),
    ]
    assert union_requirements_text(functions) == (
        f"-r {(tmp_path / 'a' / 'requirements.txt').resolve()}\n"
        f"-r {(tmp_path / 'b' / 'reqs.in').resolve()}\n"
    )


@pytest.mark.parametrize("name", ["pyproject.toml", "uv.lock", "poetry.lock", "pylock.toml"])
def test_union_needs_requirements_files(name: str) -> None:
    with pytest.raises(ConfigError, match="requirements files"):
        union_requirements_text([FunctionSpec(name="a", requirements=Path(name))])


def test_consistent_requirements_have_no_conflict(tmp_path: Path) -> None:
    sets = requirement_sets(
        tmp_path,
        {"a": "six==1.16.0\nidna>=3\n", "b": "six>=1.15,<2\nidna==3.6\n", "c": "requests\n"},
    )
    assert pin_conflicts(sets) == []


def test_conflicting_pins_name_both_functions_and_lines(tmp_path: Path) -> None:
    sets = requirement_sets(tmp_path, {"orders": "idna\nsix==1.16.0\n", "billing": "six<1.16\n"})
    (problem,) = pin_conflicts(sets)
    assert problem.startswith("six: orders needs six==1.16.0")
    assert "r.txt:2" in problem
    assert "billing needs six<1.16" in problem


def test_requirements_with_markers_are_left_to_the_resolver(tmp_path: Path) -> None:
    sets = requirement_sets(
        tmp_path,
        {
            "a": "six==1.16.0; python_version < '3.10'\n",
            "b": "six==1.15.0; python_version >= '3.10'\n",
        },
    )
    assert pin_conflicts(sets) == []


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "match"),
    [
        ("kind", "zip", "function, layer, split"),
        ("layer-layout", "opt", "python or site-packages"),
        ("compile", "maybe", "true or false"),
        ("slim", ["tests", "everything"], "Unknown slim rule"),
        ("exclude", ["/"], "meaningless glob"),
        ("functions", "not json", "JSON array"),
        ("functions", [{"name": "a"}], "needs a name and a requirements file"),
        ("functions", [{"name": "a", "requirements": "r", "handler": "x"}], "unknown keys"),
        ("functions", {"name": "a"}, "array of tables"),
    ],
)
def test_setting_errors(key: str, raw: object, match: str, tmp_path: Path) -> None:
    with pytest.raises((ConfigError, ResolutionError), match=match):
        archive_options.convert(key, raw, "pyproject.toml", tmp_path)


def test_functions_paths_are_relative_to_their_file(tmp_path: Path) -> None:
    (spec,) = archive_options.convert(
        "functions", [{"name": "a", "requirements": "fa/r.txt", "src": "fa"}], "f", tmp_path
    )
    assert spec == FunctionSpec(
        name="a", requirements=tmp_path.resolve() / "fa" / "r.txt", src=tmp_path.resolve() / "fa"
    )
