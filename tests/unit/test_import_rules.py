"""The package's house rules, read from the source: one folder per stage, imports that point
along the pipeline, and the external systems each behind one module (README, "Layout").

Each rule is a pure function over an import graph; the real package is checked, and so is a
graph with the rule broken on purpose, so a rule that cannot fail is itself a failure.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "nativebuild"
MAX_LINES = 500
MAX_TOP_LEVEL = 12
DOCKER_MODULES = {"nativebuild.engine.docker"}
AWS_SDK_MODULES = {"nativebuild.cache.s3", "nativebuild.aws.lambda_api"}


@dataclasses.dataclass(frozen=True)
class Module:
    name: str  # nativebuild.engine.docker
    lines: int
    imports: frozenset[str]  # nativebuild modules (every import: top, late, TYPE_CHECKING)
    names: frozenset[tuple[str, str]]  # (module, name) imported from nativebuild modules
    external: frozenset[str]  # top-level names of everything else imported


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_package(root: Path = PACKAGE) -> dict[str, Module]:
    paths = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in paths}
    modules = {}
    for path in paths:
        name = module_name(path, root)
        text = path.read_text(encoding="utf-8")
        imports, names, external = set(), set(), set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    if target.split(".")[0] == root.name:
                        imports.add(_longest_known(target, known))
                    else:
                        external.add(target.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] != root.name:
                    external.add(node.module.split(".")[0])
                    continue
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if submodule in known:
                        imports.add(submodule)
                    else:
                        imports.add(_longest_known(node.module, known))
                        names.add((node.module, alias.name))
        imports.discard(name)
        modules[name] = Module(
            name=name,
            lines=len(text.splitlines()),
            imports=frozenset(imports),
            names=frozenset(names),
            external=frozenset(external),
        )
    return modules


def _longest_known(dotted: str, known: set[str]) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return dotted


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# --- the rules: each returns what breaks it (empty: kept) -------------------------------------


def cycles(modules: Mapping[str, Module]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in sorted(modules[name].imports):
            if target not in modules:
                continue
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == name:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return sorted(found)


def package_graph(modules: Mapping[str, Module]) -> dict[str, Module]:
    """The stage folders (and top-level modules) as one node each, with their imports merged."""

    def stage(name: str) -> str:
        return ".".join(name.split(".")[:2])

    merged: dict[str, set[str]] = {}
    for module in modules.values():
        edges = merged.setdefault(stage(module.name), set())
        edges.update(
            stage(target) for target in module.imports if stage(target) != stage(module.name)
        )
    return {name: fake(name, *sorted(edges)) for name, edges in merged.items()}


def build_context_outside_pipeline(modules: Mapping[str, Module]) -> list[str]:
    return sorted(
        m.name
        for m in modules.values()
        if not in_package(m.name, "nativebuild.pipeline")
        and any(name == "BuildContext" for _, name in m.names)
    )


def pipeline_imported_outside_cli(modules: Mapping[str, Module]) -> list[str]:
    return sorted(
        m.name
        for m in modules.values()
        if not in_package(m.name, "nativebuild.pipeline")
        and not in_package(m.name, "nativebuild.cli")
        and any(in_package(target, "nativebuild.pipeline") for target in m.imports)
    )


def drivers_importing_nativebuild(modules: Mapping[str, Module]) -> list[str]:
    return sorted(
        m.name for m in modules.values() if in_package(m.name, "nativebuild.drivers") and m.imports
    )


def importers(modules: Mapping[str, Module], externals: Iterable[str]) -> set[str]:
    wanted = set(externals)
    return {m.name for m in modules.values() if m.external & wanted}


def printing_outside_cli(modules: Mapping[str, Module]) -> list[str]:
    """Only the CLI prints: rich and typer belong to it."""
    return sorted(
        name
        for name in importers(modules, ("rich", "typer"))
        if not in_package(name, "nativebuild.cli")
    )


def too_long(modules: Mapping[str, Module]) -> list[str]:
    return sorted(f"{m.name} ({m.lines} lines)" for m in modules.values() if m.lines > MAX_LINES)


def top_level(modules: Mapping[str, Module]) -> list[str]:
    """Modules directly in nativebuild/ (packages not counted, nor __init__ / __main__)."""
    return sorted(
        name
        for name in modules
        if name.count(".") == 1
        and name != "nativebuild.__main__"
        and not (PACKAGE / name.split(".")[1]).is_dir()
    )


# --- the real package -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package() -> dict[str, Module]:
    modules = read_package()
    assert len(modules) > 50, "the package was not read"
    return modules


def test_no_import_cycles(package: dict[str, Module]) -> None:
    assert cycles(package) == []


def test_stage_folders_import_each_other_one_way(package: dict[str, Module]) -> None:
    """The folders form a DAG: the README's "Layout" lists them in an order that follows it."""
    assert cycles(package_graph(package)) == []


def test_only_the_pipeline_takes_the_build_context(package: dict[str, Module]) -> None:
    assert build_context_outside_pipeline(package) == []


def test_only_the_cli_imports_the_pipeline(package: dict[str, Module]) -> None:
    assert pipeline_imported_outside_cli(package) == []


def test_drivers_import_nothing_from_nativebuild(package: dict[str, Module]) -> None:
    assert drivers_importing_nativebuild(package) == []


def test_docker_is_imported_in_one_module(package: dict[str, Module]) -> None:
    assert importers(package, ("docker",)) == DOCKER_MODULES


def test_the_aws_sdk_is_imported_in_two_modules_at_most(package: dict[str, Module]) -> None:
    assert importers(package, ("boto3", "botocore")) <= AWS_SDK_MODULES


def test_only_the_cli_prints(package: dict[str, Module]) -> None:
    assert printing_outside_cli(package) == []


def test_no_module_is_over_the_limit(package: dict[str, Module]) -> None:
    assert too_long(package) == []


def test_few_modules_stay_at_the_top(package: dict[str, Module]) -> None:
    found = top_level(package)
    assert len(found) <= MAX_TOP_LEVEL, found


# --- each rule fails when it is broken --------------------------------------------------------


def fake(name: str, *imports: str, names: Iterable[tuple[str, str]] = (), external: Iterable[str] = (), lines: int = 10) -> Module:  # fmt: skip
    return Module(
        name=name,
        lines=lines,
        imports=frozenset(imports),
        names=frozenset(names),
        external=frozenset(external),
    )


def graph(*modules: Module) -> dict[str, Module]:
    return {m.name: m for m in modules}


def test_a_cycle_through_three_modules_is_found() -> None:
    modules = graph(
        fake("nativebuild.a", "nativebuild.b"),
        fake("nativebuild.b", "nativebuild.c"),
        fake("nativebuild.c", "nativebuild.a"),
        fake("nativebuild.d", "nativebuild.a"),
    )
    assert cycles(modules) == [["nativebuild.a", "nativebuild.b", "nativebuild.c"]]


def test_a_cycle_between_stage_folders_is_found_when_modules_have_none() -> None:
    modules = graph(
        fake("nativebuild.index.simple_api", "nativebuild.inputs.locked"),
        fake("nativebuild.inputs.locked"),
        fake("nativebuild.inputs.lockfiles", "nativebuild.index.uv"),
        fake("nativebuild.index.uv"),
    )
    assert cycles(modules) == []
    assert cycles(package_graph(modules)) == [["nativebuild.index", "nativebuild.inputs"]]


def test_broken_layering_rules_are_found() -> None:
    modules = graph(
        fake("nativebuild.pipeline.context"),
        fake("nativebuild.pipeline.run", "nativebuild.pipeline.context"),
        fake(
            "nativebuild.abi.gate",
            "nativebuild.pipeline.context",
            names=[("nativebuild.pipeline.context", "BuildContext")],
        ),
        fake("nativebuild.cli.build", "nativebuild.pipeline.run", external=["typer"]),
        fake("nativebuild.drivers.build_wheels", "nativebuild.errors"),
        fake("nativebuild.cache.s3", external=["boto3"]),
        fake("nativebuild.archive.plan", external=["rich"], lines=MAX_LINES + 1),
    )
    assert build_context_outside_pipeline(modules) == ["nativebuild.abi.gate"]
    assert pipeline_imported_outside_cli(modules) == ["nativebuild.abi.gate"]
    assert drivers_importing_nativebuild(modules) == ["nativebuild.drivers.build_wheels"]
    assert importers(modules, ("boto3",)) == {"nativebuild.cache.s3"}
    assert printing_outside_cli(modules) == ["nativebuild.archive.plan"]
    assert too_long(modules) == [f"nativebuild.archive.plan ({MAX_LINES + 1} lines)"]


def test_imports_are_read_from_every_place_they_can_hide(tmp_path: Path) -> None:
    root = tmp_path / "nativebuild"
    (root / "stage").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "stage" / "__init__.py").write_text("")
    (root / "stage" / "one.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from nativebuild.stage.two import Thing\n"
        "def late():\n    import docker\n    from nativebuild.stage import three\n"
    )
    (root / "stage" / "two.py").write_text("from nativebuild.stage.one import late\n")
    (root / "stage" / "three.py").write_text("")
    modules = read_package(root)
    assert modules["nativebuild.stage.one"].imports == {
        "nativebuild.stage.two",
        "nativebuild.stage.three",
    }
    assert "docker" in modules["nativebuild.stage.one"].external
    assert cycles(modules) == [["nativebuild.stage.one", "nativebuild.stage.two"]]
