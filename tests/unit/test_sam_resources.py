"""Which resources of a template are built and how: the resource model, dependency sets, the
archive layout, and the built template's paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nativebuild.archive.layout import LayerLayout
from nativebuild.errors import TemplateError
from nativebuild.sam.intrinsics import Resolver
from nativebuild.sam.output import built_template, rebased
from nativebuild.sam.plan import (
    SAM_SOURCE_EXCLUDES,
    archive_spec,
    find_requirements,
    plan_sets,
)
from nativebuild.sam.resources import Buildable, Inventory, read_resources
from nativebuild.targets import Architecture
from tests.wheelfactory import make_tree


def read(root: Path, resources: dict[str, Any], **extra: Any) -> Inventory:
    document = {"Resources": resources, **extra}
    return read_resources(document, template_dir=root, resolver=Resolver.for_template(document, {}))


def function(**properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "a.b", **properties}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "app",
        {"src/app.py": "", "lay/requirements.txt": "six\n", "prebuilt.zip": "PK", "notes.txt": ""},
    )


def test_python_functions_and_layers_are_built(root: Path) -> None:
    inventory = read(
        root,
        {
            "Lay": {
                "Type": "AWS::Serverless::LayerVersion",
                "Properties": {"ContentUri": "lay"},
                "Metadata": {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"},
            },
            "Raw": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"Content": "lay", "CompatibleRuntimes": ["python3.11"]},
                "Metadata": {"BuildMethod": "python-uv"},
            },
            "Fn": function(
                Runtime="python3.12", CodeUri="src", Architectures=["arm64"],
                Layers=[{"Ref": "Lay"}, "arn:aws:lambda:us-east-1:1:layer:x:1", {"Fn::If": ["Never", {"Ref": "Raw"}, {"Ref": "AWS::NoValue"}]}],
            ),
            "Plain": {"Type": "AWS::Lambda::Function", "Properties": {"Code": "src", "Runtime": "python3.9"}},
            "Default": function(Runtime="python3.10"),
        },
        Conditions={"Never": {"Fn::Equals": ["a", "b"]}},
    )  # fmt: skip
    by_id = {b.logical_id: b for b in inventory.build}
    assert by_id["Lay"] == Buildable(
        logical_id="Lay", type="AWS::Serverless::LayerVersion", kind="layer",
        runtime="python3.12", arch=Architecture.ARM64, code_property="ContentUri",
        code_dir=root / "lay",
    )  # fmt: skip
    assert by_id["Raw"].runtime == "python3.11"
    assert by_id["Raw"].arch is Architecture.X86_64  # SAM's default BuildArchitecture
    fn = by_id["Fn"]
    assert (fn.kind, fn.arch, fn.code_dir) == ("function", Architecture.ARM64, root / "src")
    assert fn.layers == ("Lay",)
    assert fn.layer_count == 2  # the !If chose no layer
    assert by_id["Plain"].code_property == "Code"
    assert by_id["Plain"].arch is Architecture.X86_64
    assert by_id["Default"].code_dir == root  # no CodeUri: the template's folder, as SAM
    assert not inventory.left


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (function(Runtime="nodejs20.x", CodeUri="src"), "nodejs20.x: left to SAM"),
        (function(PackageType="Image"), "image function (PackageType: Image): left to SAM"),
        (function(Runtime="python3.12", InlineCode="x"), "inline code (InlineCode): nothing to build"),
        (function(Runtime="python3.12", CodeUri="s3://b/k.zip"), "code already in S3 (s3://b/k.zip): deployed as it is"),
        (function(Runtime="python3.12", CodeUri={"Bucket": "b", "Key": "k"}), "code already in S3 (CodeUri): deployed as it is"),
        (function(Runtime="python3.12", CodeUri="prebuilt.zip"), "CodeUri is already an archive (prebuilt.zip): deployed as it is"),
        ({**function(Runtime="python3.12", CodeUri="src"), "Metadata": {"SkipBuild": True}}, "Metadata.SkipBuild is true"),
        ({**function(Runtime="python3.12", CodeUri="src"), "Metadata": {"BuildMethod": "esbuild"}}, "Metadata.BuildMethod esbuild: left to SAM"),
        ({"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.12", "Code": {"ZipFile": "x"}}}, "inline code (Code.ZipFile): nothing to build"),
        ({"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "lay"}}, "no Metadata.BuildMethod: deployed as it is (as sam build does)"),
        ({"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "lay"}, "Metadata": {"BuildMethod": "nodejs20.x"}}, "Metadata.BuildMethod nodejs20.x: left to SAM"),
        ({"Type": "AWS::Serverless::Application", "Properties": {"Location": "nested/template.yaml"}}, "nested stack"),
        ({"Type": "AWS::Serverless::WebFunction", "Properties": {"CodeUri": "web/"}}, "web function: left to SAM"),
    ],
)  # fmt: skip
def test_left_alone_with_a_reason(root: Path, resource: dict[str, Any], reason: str) -> None:
    inventory = read(root, {"It": resource})
    assert not inventory.build
    (left,) = inventory.left
    assert left.reason.startswith(reason)


def test_a_function_left_to_sam_without_codeuri_keeps_pointing_at_the_template_folder(
    root: Path,
) -> None:
    inventory = read(root, {"Node": function(Runtime="nodejs20.x")})
    assert inventory.default_code == {"Node": "CodeUri"}


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (function(Runtime="python3.12", CodeUri="missing"), "It (AWS::Serverless::Function), CodeUri: 'missing' ("),
        (function(Runtime="python3.12", CodeUri="notes.txt"), "is a file, not a folder"),
        (function(Runtime="python3.12", Architectures=["x86_64", "arm64"]), "expected one architecture"),
        (function(Runtime="python3.12", CodeUri={"Fn::GetAtt": ["B", "Arn"]}), "CodeUri: cannot be decided"),
        (function(Runtime={"Fn::ImportValue": "rt"}), "Runtime: cannot be decided"),
        ({"Type": "AWS::Serverless::LayerVersion", "Properties": {}, "Metadata": {"BuildMethod": "python3.12"}}, "ContentUri: missing"),
        ({"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "lay"}, "Metadata": {"BuildMethod": "makefile"}}, "makefile builds run your Makefile"),
        ({"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "lay"}, "Metadata": {"BuildMethod": "python-uv"}}, "python-uv needs a python3.X runtime"),
    ],
)  # fmt: skip
def test_what_cannot_be_built_as_written(
    root: Path, resource: dict[str, Any], message: str
) -> None:
    with pytest.raises(TemplateError) as info:
        read(root, {"It": resource})
    assert message in str(info.value)


def test_foreach_over_functions_is_refused(root: Path) -> None:
    loop = ["Name", ["A", "B"], {"${Name}Fn": function(Runtime="python3.12", CodeUri="src")}]
    with pytest.raises(TemplateError, match="Fn::ForEach"):
        read(root, {"Fn::ForEach::Fns": loop})


def test_requirements_of_a_code_folder(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "f", {"pyproject.toml": "[project]\nname = 'x'\nversion = '1'\n"})
    assert find_requirements(folder) == folder / "pyproject.toml"
    (folder / "uv.lock").write_text("")
    assert find_requirements(folder) == folder / "uv.lock"
    (folder / "requirements.txt").write_text("six\n")
    assert find_requirements(folder) == folder / "requirements.txt"  # SAM's file wins
    tool_only = make_tree(tmp_path / "g", {"pyproject.toml": "[tool.ruff]\n"})
    assert find_requirements(tool_only) is None


def buildable(name: str, *, arch: Architecture = Architecture.X86_64, kind: str = "function",
              runtime: str = "python3.12", layers: tuple[str, ...] = ()) -> Buildable:  # fmt: skip
    return Buildable(
        logical_id=name, type="AWS::Serverless::Function", kind=kind, runtime=runtime, arch=arch,
        code_property="CodeUri", code_dir=Path(f"/src/{name}"), layers=layers,
    )  # fmt: skip


def test_dependency_sets_group_identical_requirements_per_runtime_and_arch() -> None:
    a, b, c = buildable("A"), buildable("B"), buildable("C", arch=Architecture.ARM64)
    d, e, f = buildable("D"), buildable("E", runtime="python3.13"), buildable("F")
    requirements = {
        "A": Path("/a.txt"), "B": Path("/b.txt"), "C": Path("/c.txt"), "D": Path("/d.txt"),
        "E": Path("/a.txt"), "F": None,
    }  # fmt: skip
    fingerprints = {
        Path("/a.txt"): "same",
        Path("/b.txt"): "same",
        Path("/c.txt"): "same",
        Path("/d.txt"): "other",
    }
    plan = plan_sets([a, b, c, d, e, f], requirements, fingerprints)
    groups = [
        (s.runtime, s.arch.value, [r.logical_id for r in s.resources], s.requirements)
        for s in plan.sets
    ]
    assert groups == [
        ("python3.12", "x86_64", ["A", "B"], Path("/a.txt")),
        ("python3.12", "arm64", ["C"], Path("/c.txt")),
        ("python3.12", "x86_64", ["D"], Path("/d.txt")),
        ("python3.13", "x86_64", ["E"], Path("/a.txt")),
        ("python3.12", "x86_64", ["F"], None),
    ]  # fmt: skip


def test_archive_layout_is_sams() -> None:
    layer = buildable("Deps", kind="layer", runtime="python3.11")
    fn = buildable("Api", layers=("Deps",))
    spec = archive_spec(fn, layers=[layer], skip_dirs=[Path("/b")])
    assert (spec.filename, spec.mount, spec.site_prefix, spec.src_prefix) == (
        "Api/Api-python3.12-x86_64.zip", "/var/task", "", ""
    )  # fmt: skip
    assert spec.layers == ("Deps/Deps-python3.11-x86_64.zip",)
    assert spec.src_excludes == SAM_SOURCE_EXCLUDES
    assert spec.src_skip_dirs == (Path("/b"),)
    spec = archive_spec(layer)
    assert (spec.mount, spec.site_prefix, spec.src_prefix) == ("/opt", "python/", "python/")
    spec = archive_spec(layer, layer_layout=LayerLayout.SITE_PACKAGES)
    assert spec.site_prefix == "python/lib/python3.11/site-packages/"


def test_rebased_paths(tmp_path: Path) -> None:
    template_dir, build_dir = tmp_path / "app", tmp_path / "app" / ".aws-sam" / "build"
    assert rebased("src/", template_dir, build_dir) == "../../src"
    assert rebased(".", template_dir, build_dir) == "../.."
    assert rebased("s3://b/k", template_dir, build_dir) is None
    assert rebased("https://x/y", template_dir, build_dir) is None
    assert rebased("/abs/path", template_dir, build_dir) is None
    assert rebased({"Bucket": "b"}, template_dir, build_dir) is None


def test_built_template_rebases_what_sam_rebases(tmp_path: Path) -> None:
    template_dir, build_dir = tmp_path / "app", tmp_path / "out"
    include = {"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "inc.yaml"}}}
    document = {
        "Globals": {"Function": {"CodeUri": "shared/"}},
        "Metadata": {"AWS::ServerlessRepo::Application": {"ReadmeUrl": "README.md"}},
        "Resources": {
            "Fn": function(Runtime="python3.12"),
            "Node": function(Runtime="nodejs20.x", CodeUri="node/"),
            "Web": {"Type": "AWS::Serverless::WebFunction", "Properties": {"CodeUri": "web/"}},
            "Job": {"Type": "AWS::Glue::Job", "Properties": {"Command": {"ScriptLocation": "job.py"}}},
            "Graph": {"Type": "AWS::Serverless::GraphQLApi", "Properties": {
                "SchemaUri": "schema.graphql",
                "Functions": {"F": {"CodeUri": "f.js"}}, "Resolvers": {"Q": {"R": {"CodeUri": "r.js"}}}}},
            "Cdk": {"Type": "AWS::S3::Bucket", "Metadata": {"aws:asset:path": "asset.abc"}},
            "S3": function(Runtime="nodejs20.x", CodeUri="s3://b/k"),
            "Api": {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": include}},
        },
    }  # fmt: skip
    out = built_template(
        document, template_dir=template_dir, build_dir=build_dir,
        built={"Fn": ("CodeUri", "Fn/Fn-python3.12-x86_64.zip")}, default_code={},
    )  # fmt: skip
    res = out["Resources"]
    assert res["Fn"]["Properties"]["CodeUri"] == "Fn/Fn-python3.12-x86_64.zip"
    assert res["Node"]["Properties"]["CodeUri"] == "../app/node"
    assert res["Web"]["Properties"]["CodeUri"] == "../app/web"
    assert out["Globals"]["Function"]["CodeUri"] == "../app/shared"
    assert out["Metadata"]["AWS::ServerlessRepo::Application"]["ReadmeUrl"] == "../app/README.md"
    assert res["Job"]["Properties"]["Command"]["ScriptLocation"] == "../app/job.py"
    graph = res["Graph"]["Properties"]
    assert graph["SchemaUri"] == "../app/schema.graphql"
    assert graph["Functions"]["F"]["CodeUri"] == "../app/f.js"
    assert graph["Resolvers"]["Q"]["R"]["CodeUri"] == "../app/r.js"
    assert res["Cdk"]["Metadata"]["aws:asset:path"] == "../app/asset.abc"
    assert res["S3"]["Properties"]["CodeUri"] == "s3://b/k"
    location = res["Api"]["Properties"]["DefinitionBody"]["Fn::Transform"]["Parameters"]["Location"]
    assert location == "../app/inc.yaml"
    assert document["Resources"]["Node"]["Properties"]["CodeUri"] == "node/"  # input untouched


def image_function(metadata: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {"PackageType": "Image", **properties},
        "Metadata": {"BuildMethod": "nativebuild-image", **metadata},
    }


def test_nativebuild_image_functions_are_built(root: Path) -> None:
    inventory = read(
        root,
        {
            "Img": image_function(
                {"Runtime": "python3.12", "DockerContext": "src", "DockerTag": "v2"},
                Architectures=["arm64"], ImageConfig={"Command": ["app.handler"]},
            ),
            "Plain": image_function({"Runtime": "python3.11", "Handler": "m.f"}, CodeUri="src"),
        },
    )  # fmt: skip
    by_id = {b.logical_id: b for b in inventory.build}
    img = by_id["Img"]
    assert (img.kind, img.runtime, img.arch, img.code_dir) == (
        "image", "python3.12", Architecture.ARM64, root / "src"
    )  # fmt: skip
    assert (img.handler, img.image_tag, img.code_property) == ("app.handler", "v2", "ImageUri")
    plain = by_id["Plain"]
    assert (plain.handler, plain.image_tag, plain.code_dir) == ("m.f", "latest", root / "src")


@pytest.mark.parametrize(
    ("metadata", "properties", "message"),
    [
        ({"DockerContext": "src"}, {"ImageConfig": {"Command": ["a.b"]}}, "Metadata.Runtime: missing"),
        ({"Runtime": "python3.12", "DockerContext": "src"}, {}, "ImageConfig.Command: missing"),
        ({"Runtime": "python3.12", "DockerContext": "nope"}, {"ImageConfig": {"Command": ["a.b"]}}, "Metadata.DockerContext: 'nope'"),
    ],
)  # fmt: skip
def test_what_an_image_function_needs(
    root: Path, metadata: dict[str, Any], properties: dict[str, Any], message: str
) -> None:
    with pytest.raises(TemplateError) as info:
        read(root, {"It": image_function(metadata, **properties)})
    assert message in str(info.value)
