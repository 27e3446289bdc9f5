"""``nativebuild sam build`` through the CLI on real templates and files, with fake containers
(tests/fakes.py): what is built and how, the built template and build directory, dedupe of
identical dependency sets, warm rebuilds, and every error leaving the build directory as it was.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.sam.template import load_template
from tests.fakes import ArchiveJobsRunner, FakeIndex, FakeUv
from tests.wheelfactory import make_tree

IMAGE = "example/build-{runtime}:{arch}"
RESOURCE_KEYS = {"logical_id", "type", "runtime", "arch", "archive", "sha256", "status", "reason"}

TEMPLATE = """\
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Description: orders and reports
Parameters:
  PythonRuntime:
    Type: String
    Default: python3.9
  Stage:
    Type: String
    Default: dev
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: !Ref PythonRuntime
    Timeout: 10
    Layers:
      - !Ref SharedLayer
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/shared/
      CompatibleRuntimes: [!Ref PythonRuntime]
      CompatibleArchitectures: [x86_64, arm64]
    Metadata:
      BuildMethod: python3.9
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/orders/
      Handler: app.handler
      Architectures: [x86_64]
      Environment:
        Variables:
          TABLE: !Ref OrdersTable
          ACCOUNT: "0123456789"
  ReportsFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: !Sub functions/${ReportsFolder}
      Handler: app.handler
      Architectures: [arm64]
      MemorySize: !If [IsProd, 1024, 256]
  NodeFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/node/
      Handler: index.handler
      Runtime: nodejs20.x
  ImageFunction:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
    Metadata:
      Dockerfile: Dockerfile
      DockerContext: ./image
  OrdersTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  Docs:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref Stage
      DefinitionUri: api/openapi.yaml
Outputs:
  OrdersArn:
    Value: !GetAtt OrdersFunction.Arn
"""

FILES = {
    "layers/shared/requirements.txt": "six==1.16.0\n",
    "functions/orders/app.py": "import six\n\ndef handler(event, context):\n    return 1\n",
    "functions/orders/requirements.txt": "idna==3.6\nmarkupsafe==2.1.5\n",
    "functions/orders/.env": "SECRET=never packed, as SAM leaves .env out\n",
    "functions/orders/tests/test_app.py": "def test(): pass\n",
    "functions/reports/app.py": "def handler(event, context):\n    return 2\n",
    "functions/reports/requirements.txt": "markupsafe==2.1.5\n",
    "functions/node/index.js": "exports.handler = async () => 1;\n",
    "image/Dockerfile": "FROM scratch\n",
    "api/openapi.yaml": "openapi: 3.0.0\n",
}


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> ArchiveJobsRunner:
    runner = ArchiveJobsRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    return runner


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "app", {"template.yaml": TEMPLATE, **FILES})
    (root / "functions" / "orders" / "tests").mkdir(exist_ok=True)
    return root


def sam_build(
    app: Path, cache: Path, *extra: str, cwd: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    args = [
        "sam", "build", "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "--json", *extra,
    ]  # fmt: skip
    previous = Path.cwd()
    os.chdir(cwd or app)
    try:
        result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    finally:
        os.chdir(previous)
    output = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, output, result.stderr


def resources(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["logical_id"]: r for r in output["resources"]}


def names(path: str | Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def template_with_folder_parameter(app: Path) -> Path:
    text = TEMPLATE.replace(
        "  Stage:\n", "  ReportsFolder:\n    Type: String\n  Stage:\n"
    )  # no Default: --parameter-overrides gives it
    (app / "template.yaml").write_text(text)
    return app


def test_builds_python_functions_and_layers_and_leaves_the_rest(
    template_with_folder_parameter: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    app = template_with_folder_parameter
    code, output, err = sam_build(
        app, tmp_path / "cache", "--parameter-overrides", "ReportsFolder=reports"
    )
    assert code == 0, err
    assert set(output) == {"resources", "wheels", "containers_started", "deprecations"}
    # Every function here is python3.9: one notice, with Lambda's dates (issue 18).
    [notice] = output["deprecations"]
    assert (notice["runtime"], notice["block_update"]) == ("python3.9", "2026-03-09")
    assert "python3.9 is deprecated since 2025-12-15" in err
    found = resources(output)
    assert all(set(r) == RESOURCE_KEYS for r in output["resources"])
    assert list(found) == [
        "SharedLayer", "OrdersFunction", "ReportsFunction", "NodeFunction", "ImageFunction"
    ]  # fmt: skip
    build_dir = app / ".aws-sam" / "build"
    for logical_id, arch in (
        ("SharedLayer", "x86_64"), ("OrdersFunction", "x86_64"), ("ReportsFunction", "arm64")
    ):  # fmt: skip
        entry = found[logical_id]
        expected = build_dir / logical_id / f"{logical_id}-python3.9-{arch}.zip"
        assert entry["archive"] == str(expected)
        assert entry["status"] == "built"
        assert (entry["runtime"], entry["arch"]) == ("python3.9", arch)
        assert expected.is_file()
    assert found["NodeFunction"]["status"] == "skipped"
    assert found["NodeFunction"]["reason"] == "nodejs20.x: left to SAM"
    assert found["NodeFunction"]["archive"] is None
    assert found["ImageFunction"]["reason"].startswith("image function")

    layer = names(found["SharedLayer"]["archive"])
    assert "python/six/__init__.py" in layer
    assert "python/requirements.txt" in layer  # SAM copies the folder into python/ too
    orders = names(found["OrdersFunction"]["archive"])
    assert {"app.py", "requirements.txt", "idna/__init__.py", "markupsafe/_speedups.so"} <= set(
        orders
    )
    assert ".env" not in orders  # SAM's exclusions of a code folder
    assert "six/__init__.py" not in orders  # that is the layer's
    reports = names(found["ReportsFunction"]["archive"])
    assert "markupsafe/_speedups.so" in reports
    wheels = {(w["name"], w["arch"]) for w in output["wheels"]}
    assert wheels == {
        ("six", "x86_64"), ("idna", "x86_64"), ("markupsafe", "x86_64"), ("markupsafe", "arm64")
    }  # fmt: skip


def test_built_template_points_at_the_archives_and_keeps_the_rest(
    template_with_folder_parameter: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    app = template_with_folder_parameter
    code, _, err = sam_build(
        app, tmp_path / "cache", "--parameter-overrides", "ReportsFolder=reports"
    )
    assert code == 0, err
    build_dir = app / ".aws-sam" / "build"
    original = load_template(app / "template.yaml")
    built = load_template(build_dir / "template.yaml")
    res, before = built["Resources"], original["Resources"]
    assert res["OrdersFunction"]["Properties"]["CodeUri"] == (
        "OrdersFunction/OrdersFunction-python3.9-x86_64.zip"
    )
    assert res["ReportsFunction"]["Properties"]["CodeUri"] == (
        "ReportsFunction/ReportsFunction-python3.9-arm64.zip"
    )
    assert res["SharedLayer"]["Properties"]["ContentUri"] == (
        "SharedLayer/SharedLayer-python3.9-x86_64.zip"
    )
    # Left to SAM: the relative path now leads from the build directory to the same folder.
    node = res["NodeFunction"]["Properties"]["CodeUri"]
    assert node == "../../functions/node"
    assert (build_dir / node).resolve() == (app / "functions" / "node").resolve()
    assert (build_dir / res["Docs"]["Properties"]["DefinitionUri"]).resolve() == (
        app / "api" / "openapi.yaml"
    )
    # Everything else is as it was (intrinsics in their long form, as SAM writes them).
    for name in ("OrdersTable", "ImageFunction"):
        assert res[name] == before[name]
    for key in ("Parameters", "Conditions", "Globals", "Outputs", "Description"):
        assert built[key] == original[key]
    assert built["AWSTemplateFormatVersion"] == "2010-09-09"
    assert res["OrdersFunction"]["Properties"]["Environment"] == {
        "Variables": {"TABLE": {"Ref": "OrdersTable"}, "ACCOUNT": "0123456789"}
    }
    assert res["ReportsFunction"]["Properties"]["MemorySize"] == {"Fn::If": ["IsProd", 1024, 256]}
    manifest = json.loads((build_dir / "manifest.json").read_text())
    assert manifest["schema"] == "nativebuild-manifest/1"
    assert manifest["template"] == "template.yaml"
    files = {a["name"]: a["file"] for a in manifest["archives"]}
    assert files["OrdersFunction"] == "OrdersFunction/OrdersFunction-python3.9-x86_64.zip"
    (orders,) = [a for a in manifest["archives"] if a["name"] == "OrdersFunction"]
    assert orders["layers"] == ["SharedLayer/SharedLayer-python3.9-x86_64.zip"]
    assert [r["logical_id"] for r in manifest["resources"]][-1] == "ImageFunction"
    assert not [p for p in (app / ".aws-sam" / ".build.nativebuild").iterdir() if p.is_dir()]


# --- dependency sets ---------------------------------------------------------------------------

SHARED_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.9
    Handler: app.handler
Resources:
  A:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: a/}
  B:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: b/}
  C:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: c/, Architectures: [arm64]}
  D:
    Type: AWS::Lambda::Function
    Properties: {Code: d/, Runtime: python3.9, Handler: app.handler, Role: arn:aws:iam::1:role/x}
  Plain:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: plain/}
"""
SAME = "markupsafe==2.1.5\n"


@pytest.fixture
def shared_app(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "shared",
        {
            "template.yaml": SHARED_TEMPLATE,
            "a/app.py": "A = 1\n", "a/requirements.txt": SAME,
            "b/app.py": "B = 1\n", "b/requirements.txt": "# the same set, written apart\n" + SAME,
            "c/app.py": "C = 1\n", "c/requirements.txt": SAME,
            "d/app.py": "D = 1\n", "d/requirements.txt": SAME + "six==1.16.0\n",
            "plain/app.py": "P = 1\n",
        },
    )  # fmt: skip


def compile_specs(fake: ArchiveJobsRunner) -> list[tuple[str, str]]:
    return [
        (s.platform or "", s.description) for s in fake.specs if s.description.startswith("compile")
    ]


def test_identical_dependency_sets_are_resolved_and_built_once(
    shared_app: Path, tmp_path: Path, fake: ArchiveJobsRunner, index: FakeIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    uv = FakeUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    code, output, err = sam_build(shared_app, tmp_path / "cache")
    assert code == 0, err
    found = resources(output)
    # A and B: one set (x86_64); C: the same requirements on arm64; D: another set.
    resolves = [s for s in fake.specs if s.description.startswith("resolve")]
    assert sorted(s.platform or "" for s in resolves) == [
        "linux/amd64",
        "linux/amd64",
        "linux/arm64",
    ]
    assert len(uv.calls) == 3  # one host attempt per set, never per function
    # markupsafe is compiled once per architecture: A, B and D share the x86_64 wheel.
    assert sorted(compile_specs(fake)) == [
        ("linux/amd64", "compile markupsafe 2.1.5"), ("linux/arm64", "compile markupsafe 2.1.5")
    ]  # fmt: skip
    assert "the same dependencies as B, resolved and built once" in found["A"]["reason"]
    assert "the same dependencies as A" in found["B"]["reason"]
    assert found["Plain"]["reason"] == "code only: no requirements file in its CodeUri"
    assert names(found["Plain"]["archive"]) == ["app.py"]
    assert found["D"]["type"] == "AWS::Lambda::Function"
    with zipfile.ZipFile(found["A"]["archive"]) as a, zipfile.ZipFile(found["B"]["archive"]) as b:
        assert a.read("markupsafe/_speedups.so") == b.read("markupsafe/_speedups.so")
        assert a.read("app.py") == b"A = 1\n"
        assert b.read("app.py") == b"B = 1\n"
    built = load_template(shared_app / ".aws-sam" / "build" / "template.yaml")
    assert built["Resources"]["D"]["Properties"]["Code"] == "D/D-python3.9-x86_64.zip"


def test_warm_rebuild_starts_no_container_and_writes_the_same_bytes(
    shared_app: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    build_dir = shared_app / ".aws-sam" / "build"
    # A custom runtime image is probed (in a container) once; an arm64 one under emulation.
    runtime = ("--runtime-image", "example/runtime-{runtime}:{arch}")
    code, first, err = sam_build(shared_app, tmp_path / "cache", *runtime)
    assert code == 0, err
    probes = [s for s in fake.specs if s.description.startswith("probe the libraries")]
    assert sorted(s.platform or "" for s in probes) == ["linux/amd64", "linux/arm64"]
    before = snapshot(build_dir)
    started = fake.containers_started
    code, second, err = sam_build(shared_app, tmp_path / "cache", *runtime)
    assert code == 0, err
    assert second["containers_started"] == 0
    assert fake.containers_started == started
    after = snapshot(build_dir)
    assert after.keys() == before.keys()
    for name in after.keys() - {"manifest.json"}:
        assert after[name] == before[name], name  # archives and template, byte for byte
    # The manifest differs only in how this run got each wheel (the cache, this time).
    first_manifest, second_manifest = (json.loads(m["manifest.json"]) for m in (before, after))
    for archive in first_manifest["archives"]:
        for wheel in archive["wheels"]:
            wheel["source"] = "cache"
    assert second_manifest == first_manifest
    statuses = {r["logical_id"]: r["status"] for r in second["resources"]}
    assert statuses == {
        "A": "cached",
        "B": "cached",
        "C": "cached",
        "D": "cached",
        "Plain": "built",
    }
    assert [r["sha256"] for r in first["resources"]] == [r["sha256"] for r in second["resources"]]


def test_build_dir_and_template_elsewhere(
    shared_app: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    """-t and --build-dir as sam build takes them; paths in the built template are relative to
    the build directory wherever it is."""
    elsewhere = tmp_path / "out" / "build"
    code, output, err = sam_build(
        shared_app, tmp_path / "cache", "-t", str(shared_app / "template.yaml"),
        "--build-dir", str(elsewhere), cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert resources(output)["A"]["archive"] == str(elsewhere / "A" / "A-python3.9-x86_64.zip")
    assert (elsewhere / "template.yaml").is_file()
    assert not (tmp_path / ".aws-sam").exists()
    assert not (shared_app / ".aws-sam").exists()


def test_code_folder_is_the_template_folder_without_the_build_dir(
    tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    """No CodeUri: SAM's default, the template's own folder. Its .aws-sam (and a build dir
    given inside it) must not be packed into the function."""
    app = make_tree(
        tmp_path / "dot",
        {
            "template.yaml": (
                "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
                "    Properties: {Runtime: python3.9, Handler: app.handler}\n"
            ),
            "app.py": "X = 1\n",
            "requirements.txt": "six==1.16.0\n",
        },
    )
    for _ in range(2):
        code, output, err = sam_build(app, tmp_path / "cache", "--build-dir", "out")
        assert code == 0, err
    listing = names(resources(output)["Fn"]["archive"])
    assert {"app.py", "requirements.txt", "template.yaml", "six/__init__.py"} <= set(listing)
    assert not [n for n in listing if n.startswith(("out/", ".aws-sam/", ".out"))]


# --- errors: a clear message naming the resource, an exit code, the build dir untouched ------

ONE_FUNCTION = """\
Parameters:
  Folder: {{Type: String}}
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: {runtime}
      Handler: app.handler
      CodeUri: {code_uri}
      Layers: {layers}
{extra}"""


def one_function(
    app: Path, *, runtime: str = "python3.9", code_uri: str = "fn/", layers: str = "[]",
    extra: str = "",
) -> None:  # fmt: skip
    text = ONE_FUNCTION.format(runtime=runtime, code_uri=code_uri, layers=layers, extra=extra)
    (app / "template.yaml").write_text(text)


@pytest.fixture
def built_once(tmp_path: Path, fake: ArchiveJobsRunner) -> tuple[Path, dict[str, bytes]]:
    """An app built once, and its build directory's files: a failed build must leave them."""
    app = make_tree(
        tmp_path / "one",
        {
            "fn/app.py": "X = 1\n",
            "fn/requirements.txt": "markupsafe==2.1.5\n",
            "lay/requirements.txt": "six==1.16.0\n",
        },
    )
    one_function(app)
    code, _, err = sam_build(app, tmp_path / "cache")
    assert code == 0, err
    return app, snapshot(app / ".aws-sam" / "build")


LAYER = """\
  Lay:
    Type: AWS::Serverless::LayerVersion
    Properties: {{ContentUri: lay/}}
    Metadata: {{BuildMethod: {method}, BuildArchitecture: {arch}}}
"""


@pytest.mark.parametrize(
    ("change", "exit_code", "expected"),
    [
        ({"code_uri": "nope/"}, 20, "Api (AWS::Serverless::Function), CodeUri: 'nope/' ("),
        ({"code_uri": "fn/app.py"}, 20, "is a file, not a folder"),
        ({"runtime": "python3.8"}, 2, "Api (AWS::Serverless::Function), Runtime: python3.8 is not a Python runtime"),
        ({"code_uri": "!GetAtt Bucket.Arn"}, 20, "Api (AWS::Serverless::Function), CodeUri: cannot be decided before deploying: !GetAtt Bucket.Arn"),
        ({"code_uri": "!Ref Folder"}, 20, "the parameter Folder has no Default and no value in --parameter-overrides"),
        ({"runtime": "!Sub 'python3.${AWS::Region}'"}, 20, "Runtime: cannot be decided before deploying: the pseudo parameter AWS::Region"),
        ({"extra": LAYER.format(method="makefile", arch="x86_64")}, 20, "Lay (AWS::Serverless::LayerVersion), Metadata.BuildMethod: makefile builds run your Makefile"),
        ({"extra": "    Metadata: {BuildMethod: makefile}\n"}, 20, "Api (AWS::Serverless::Function), Metadata.BuildMethod: makefile"),
        ({"extra": LAYER.format(method="python3.9", arch="sparc")}, 2, "Lay (AWS::Serverless::LayerVersion), Metadata.BuildArchitecture: Unknown architecture 'sparc'"),
        ({"layers": "[a, b, c, d, e, f]"}, 11, "Api/Api-python3.9-x86_64.zip needs 6 layers; a function can use at most 5"),
    ],
)  # fmt: skip
def test_errors_name_the_resource_and_leave_the_build_dir(
    built_once: tuple[Path, dict[str, bytes]], tmp_path: Path, change: dict[str, str],
    exit_code: int, expected: str,
) -> None:  # fmt: skip
    app, before = built_once
    one_function(app, **change)
    code, _, err = sam_build(app, tmp_path / "cache")
    assert code == exit_code, err
    assert expected in " ".join(err.split()), err
    assert "Traceback" not in err
    assert snapshot(app / ".aws-sam" / "build") == before
    assert not [p for p in (app / ".aws-sam" / ".build.nativebuild").iterdir() if p.is_dir()]


def test_a_failed_compile_leaves_the_previous_build(
    built_once: tuple[Path, dict[str, bytes]], tmp_path: Path, fake: ArchiveJobsRunner,
    index: FakeIndex,
) -> None:  # fmt: skip
    app, before = built_once
    index.add_sdist("simplejson", "3.17.2")
    (app / "fn" / "requirements.txt").write_text("markupsafe==2.1.5\nsimplejson==3.17.2\n")
    fake.fail_compile.add("simplejson")
    code, _, err = sam_build(app, tmp_path / "cache")
    assert code == 6, err
    assert "simplejson" in err
    assert snapshot(app / ".aws-sam" / "build") == before


def test_a_function_is_checked_with_its_layer(
    built_once: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """An arm64 function using an x86_64 layer that holds a compiled extension: the pair fails
    the ABI check (the layer alone passes), before anything is written."""
    app, before = built_once
    (app / "lay" / "requirements.txt").write_text("markupsafe==2.1.5\n")
    one_function(
        app, layers="[!Ref Lay]", extra=LAYER.format(method="python3.9", arch="x86_64")
        + "Globals:\n  Function:\n    Architectures: [arm64]\n",
    )  # fmt: skip
    code, _, err = sam_build(app, tmp_path / "cache")
    assert code == 14, err
    assert "markupsafe/_speedups.so" in err
    assert snapshot(app / ".aws-sam" / "build") == before


def test_missing_template(tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = sam_build(empty, tmp_path / "cache")
    assert code == 20
    assert "No SAM template in" in err
    assert "template.yaml" in err
    code, _, err = sam_build(empty, tmp_path / "cache", "-t", "other.yaml")
    assert code == 20
    assert "other.yaml not found" in " ".join(err.split())
    assert not (empty / ".aws-sam").exists()


def test_unparseable_template_names_the_line(tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    app = make_tree(tmp_path / "bad", {"template.yaml": "Resources:\n  A: [unclosed\n"})
    code, _, err = sam_build(app, tmp_path / "cache")
    assert code == 20
    assert "Cannot parse the template" in err
    assert "line" in err


def test_cache_only_refuses_before_any_container(tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    app = make_tree(
        tmp_path / "co",
        {"fn/app.py": "X = 1\n", "fn/requirements.txt": "idna==3.6\nmarkupsafe==2.1.5\n"},
    )
    one_function(app)
    code, _, err = sam_build(app, tmp_path / "cache", "--cache-only")
    assert code == 13, err
    assert not [s for s in fake.specs if s.description.startswith("compile")]
    assert not (app / ".aws-sam" / "build").exists()


# --- reading templates as SAM does --------------------------------------------------------------


def test_json_template_conditions_and_overrides(tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    template = {
        "Parameters": {"Runtime": {"Type": "String", "Default": "python3.12"}, "Stage": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
        "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
                "Runtime": {"Ref": "Runtime"}, "Handler": "app.handler",
                "CodeUri": {"Fn::If": ["IsProd", "prod/", "dev/"]}}},
            "Debug": {"Type": "AWS::Serverless::Function", "Condition": "IsProd",
                      "Properties": {"Runtime": "python3.9", "CodeUri": "missing/", "Handler": "x.y"}},
        },
    }  # fmt: skip
    app = make_tree(
        tmp_path / "json",
        {
            "template.yml": json.dumps(template),
            "dev/app.py": "DEV = 1\n",
            "prod/app.py": "PROD = 1\n",
        },
    )
    code, output, err = sam_build(
        app, tmp_path / "cache", "--parameter-overrides", "Runtime=python3.9 Nope=1"
    )
    assert code == 0, err
    found = resources(output)
    assert found["Fn"]["runtime"] == "python3.9"
    assert names(found["Fn"]["archive"]) == ["app.py"]
    with zipfile.ZipFile(found["Fn"]["archive"]) as zf:
        assert zf.read("app.py") == b"DEV = 1\n"
    assert found["Debug"]["status"] == "skipped"
    assert found["Debug"]["reason"] == "its Condition IsProd is false: not deployed"
    assert "--parameter-overrides Nope: the template has no such parameter" in err
    code, output, err = sam_build(
        app, tmp_path / "cache", "--parameter-overrides", "ParameterKey=Stage,ParameterValue=prod"
    )
    assert code == 20  # Debug is deployed now, and its CodeUri does not exist
    assert "Debug (AWS::Serverless::Function), CodeUri: 'missing/'" in " ".join(err.split())


# --- the makefile route: `nativebuild build --artifacts-dir $(ARTIFACTS_DIR)` ----------------


def tree_modes(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_artifacts_dir_holds_the_archive_unzipped(
    tmp_path: Path, fake: ArchiveJobsRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_tree(
        tmp_path / "mk",
        {
            "requirements.txt": "six==1.16.0\nmarkupsafe==2.1.5\n",
            "app.py": "X = 1\n",
            "run.sh": "#!/bin/sh\n",
        },
        executable={"run.sh"},
    )
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "app.py").write_text("stale\n")  # replaced, as make would
    base = [
        "build", "--src", ".", "--runtime", "python3.9", "--arch", "arm64",
        "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    previous = Path.cwd()
    os.chdir(project)
    try:
        result = CliRunner().invoke(cli.app, [*base, "--artifacts-dir", str(artifacts)])
        assert result.exit_code == 0, result.stderr
        (archive,) = (project / "dist").glob("*.zip")
        with zipfile.ZipFile(archive) as zf:
            expected = {
                i.filename: (zf.read(i), (i.external_attr >> 16) & 0o777) for i in zf.infolist()
            }
        unpacked = tree_modes(artifacts)
        assert unpacked == expected
        assert unpacked["run.sh"][1] == 0o755
        assert "markupsafe/_speedups.so" in unpacked
        # The same build again, into a fresh $(ARTIFACTS_DIR) as sam build gives: up to date,
        # and the files are there all the same.
        monkeypatch.setattr(
            "nativebuild.pipeline.uptodate.engine_image_ids",
            lambda env: lambda ref, platform: fake.image_id(ref, platform=platform),
        )
        fresh = tmp_path / "artifacts-again"
        again = CliRunner().invoke(cli.app, [*base, "--artifacts-dir", str(fresh)])
        assert again.exit_code == 0, again.stderr
        assert "Up to date" in again.stderr
        assert tree_modes(fresh) == expected
        two = CliRunner().invoke(
            cli.app, [*base, "--arch", "x86_64", "--artifacts-dir", str(artifacts)]
        )
        assert two.exit_code == 2
        assert "--artifacts-dir unpacks one archive" in two.stderr
    finally:
        os.chdir(previous)


def test_unzipped_layers_for_sam_local(
    template_with_folder_parameter: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    """sam local invoke copies a layer's ContentUri into its image as it is: with
    --unzipped-layers the built template points layers at their unpacked folders (functions
    stay archives, which sam local unzips itself)."""
    app = template_with_folder_parameter
    code, output, err = sam_build(
        app,
        tmp_path / "cache",
        "--unzipped-layers",
        "--parameter-overrides",
        "ReportsFolder=reports",
    )
    assert code == 0, err
    build_dir = app / ".aws-sam" / "build"
    resources_ = load_template(build_dir / "template.yaml")["Resources"]
    assert resources_["SharedLayer"]["Properties"]["ContentUri"] == "SharedLayer/content"
    assert resources_["OrdersFunction"]["Properties"]["CodeUri"].endswith(".zip")
    archive = resources(output)["SharedLayer"]["archive"]
    with zipfile.ZipFile(archive) as zf:
        expected = {name: zf.read(name) for name in zf.namelist()}
    assert snapshot(build_dir / "SharedLayer" / "content") == expected


# --- image functions: Metadata.BuildMethod nativebuild-image ------------------------------------

IMAGE_TEMPLATE = """\
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      Architectures: [arm64]
      ImageConfig: {Command: [handler.handler]}
    Metadata:
      BuildMethod: nativebuild-image
      Runtime: python3.9
      DockerContext: ./img
      DockerTag: v1
  Theirs:
    Type: AWS::Serverless::Function
    Properties: {PackageType: Image}
    Metadata: {Dockerfile: Dockerfile, DockerContext: ./other, DockerTag: v1}
"""


def test_image_functions_with_nativebuild_image_are_built_and_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.functional.image_project import RUNTIME_IMAGE, fake_engine, image_index

    fake = fake_engine(image_index(tmp_path), monkeypatch)
    app = make_tree(
        tmp_path / "img-app",
        {
            "template.yaml": IMAGE_TEMPLATE,
            "img/requirements.txt": "six==1.16.0\n",
            "img/handler.py": "def handler(event, context):\n    return 1\n",
            "other/Dockerfile": "FROM scratch\n",
        },
    )
    code, output, err = sam_build(app, tmp_path / "cache", "--runtime-image", RUNTIME_IMAGE)
    assert code == 0, err
    found = resources(output)
    assert found["Api"]["status"] == "built"
    assert found["Api"]["reason"].startswith("image api:v1 (sha256:")
    loaded = fake.images["api:v1"].id  # loaded into the engine under SAM's tag
    assert found["Api"]["reason"] == f"image api:v1 ({loaded[:19]}), loaded into the engine"
    assert found["Theirs"]["reason"] == "image function (PackageType: Image): left to SAM"
    build_dir = app / ".aws-sam" / "build"
    built = load_template(build_dir / "template.yaml")["Resources"]
    assert built["Api"]["Properties"]["ImageUri"] == "api:v1"
    assert "ImageUri" not in built["Theirs"]["Properties"]
    assert Path(found["Api"]["archive"]).is_file()  # the image's tarball, in its folder
    manifest = json.loads((build_dir / "manifest.json").read_text())
    assert [a["kind"] for a in manifest["archives"]] == ["image"]


# --- nothing changed, nothing done -------------------------------------------------------------


def test_an_unchanged_template_is_answered_before_the_pipeline_runs(
    shared_app: Path, tmp_path: Path, fake: ArchiveJobsRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "nativebuild.pipeline.uptodate.engine_image_ids",
        lambda env: lambda ref, platform: fake.image_id(ref, platform=platform),
    )
    build_dir = shared_app / ".aws-sam" / "build"
    code, cold, err = sam_build(shared_app, tmp_path / "cache")
    assert code == 0, err
    written = snapshot(build_dir)

    def no_engine(*args: object, **kwargs: object) -> None:
        msg = "an unchanged build must not even open the engine"
        raise AssertionError(msg)

    with monkeypatch.context() as patched:
        patched.setattr("nativebuild.engine.docker.DockerRunner.from_env", no_engine)
        code, warm, err = sam_build(shared_app, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" in err
    assert warm["containers_started"] == 0
    assert [r["sha256"] for r in warm["resources"]] == [r["sha256"] for r in cold["resources"]]
    assert {r["status"] for r in warm["resources"]} == {"cached"}
    assert snapshot(build_dir) == written
    assert "python3.9 is deprecated since 2025-12-15" in err  # the answer still warns
    assert [d["runtime"] for d in warm["deprecations"]] == ["python3.9"]
    # Each of these means a real build again.
    changes = [
        lambda: (shared_app / "a" / "app.py").write_text("A = 2\n"),  # a function's code
        lambda: (shared_app / "b" / "new.py").write_text(""),  # a file more
        lambda: (build_dir / "C" / "C-python3.9-arm64.zip").write_bytes(b"tampered"),  # output
        lambda: (shared_app / "d" / "requirements.txt").write_text(SAME),  # requirements
    ]
    for change in changes:
        change()
        code, _, err = sam_build(shared_app, tmp_path / "cache")
        assert code == 0, err
        assert "Up to date" not in err
    assert zipfile.ZipFile(build_dir / "C" / "C-python3.9-arm64.zip").testzip() is None
    code, _, err = sam_build(shared_app, tmp_path / "cache", "--parameter-overrides", "X=1")
    assert code == 0, err
    assert "Up to date" not in err  # other parameters: another request
