"""The build directory SAM's other commands read: ``template.yaml`` pointing at the archives,
``<LogicalId>/`` per built resource, ``manifest.json``; written whole, then swapped in.

``sam package``/``sam deploy`` read ``.aws-sam/build/template.yaml`` when it exists and upload a
``.zip`` CodeUri unchanged (``samcli/lib/package/utils.py``), so pointing each built resource at
its reproducible archive keeps those bytes all the way to Lambda. The rest of the template is
left as it was, except that relative paths are rebased to still point at the source from the
build directory: the properties SAM CLI rebases when it moves a template
(``samcli/commands/_utils/template.py``, ``samcli/lib/utils/resources.py``), plus Globals'
CodeUri, which the functions left to SAM still inherit.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock

from nativebuild.errors import ArchiveError
from nativebuild.sam.template import dump_template

BUILT_TEMPLATE = "template.yaml"
MANIFEST = "manifest.json"
# Properties holding local paths, per resource type (dotted: nested), as SAM CLI rebases them.
LOCAL_PATHS: Mapping[str, tuple[str, ...]] = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::WebFunction": ("CodeUri",),  # SAM CLI 1.170
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
    "AWS::Serverless::GraphQLApi": ("SchemaUri",),
    "AWS::AppSync::GraphQLSchema": ("DefinitionS3Location",),
    "AWS::AppSync::Resolver": (
        "RequestMappingTemplateS3Location", "ResponseMappingTemplateS3Location", "CodeS3Location",
    ),
    "AWS::AppSync::FunctionConfiguration": (
        "RequestMappingTemplateS3Location", "ResponseMappingTemplateS3Location", "CodeS3Location",
    ),
    "AWS::Lambda::Function": ("Code",),
    "AWS::ApiGateway::RestApi": ("BodyS3Location",),
    "AWS::ApiGatewayV2::Api": ("BodyS3Location",),
    "AWS::ElasticBeanstalk::ApplicationVersion": ("SourceBundle",),
    "AWS::CloudFormation::ModuleVersion": ("ModulePackage",),
    "AWS::CloudFormation::ResourceVersion": ("SchemaHandlerPackage",),
    "AWS::CloudFormation::Stack": ("TemplateURL",),
    "AWS::CloudFormation::StackSet": ("TemplateURL",),
    "AWS::Serverless::Application": ("Location",),
    "AWS::Lambda::LayerVersion": ("Content",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Glue::Job": ("Command.ScriptLocation",),
    "AWS::StepFunctions::StateMachine": ("DefinitionS3Location",),
}  # fmt: skip
IMAGE_FUNCTIONS = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
METADATA_PATHS = {"AWS::ServerlessRepo::Application": ("LicenseUrl", "ReadmeUrl")}
ASSET_PATH = "aws:asset:path"  # CDK's metadata on synthesized resources


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceOutcome:
    """What a build did with one function or layer, as `--json` and the manifest say it."""

    logical_id: str
    type: str
    runtime: str | None
    arch: str | None
    archive: Path | None
    sha256: str | None
    status: str  # built | cached | skipped
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id, "type": self.type, "runtime": self.runtime,
            "arch": self.arch, "archive": None if self.archive is None else str(self.archive),
            "sha256": self.sha256, "status": self.status, "reason": self.reason,
        }  # fmt: skip


def rebased(path: Any, template_dir: Path, build_dir: Path) -> str | None:
    """``path``, relative to ``template_dir``, made relative to ``build_dir``; None when it is
    not a relative path (an S3 or HTTP URL, an absolute path, not a string)."""
    if not isinstance(path, str) or path.startswith(("s3://", "http://", "https://")):
        return None
    if Path(path).is_absolute():
        return None
    target = os.path.normpath(template_dir.resolve() / path)
    return Path(os.path.relpath(target, build_dir.resolve())).as_posix()


def _rebase_in(holder: Any, dotted: str, template_dir: Path, build_dir: Path) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if isinstance(holder, dict) and last in holder:
        moved = rebased(holder[last], template_dir, build_dir)
        if moved is not None:
            holder[last] = moved


def _rebase_graphql_code(node: Any, template_dir: Path, build_dir: Path) -> None:
    # GraphQLApi: every Functions.*.CodeUri and Resolvers.*.*.CodeUri
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "CodeUri":
                _rebase_in(node, key, template_dir, build_dir)
            else:
                _rebase_graphql_code(value, template_dir, build_dir)


def _rebase_includes(node: Any, template_dir: Path, build_dir: Path) -> None:
    # Fn::Transform AWS::Include may appear anywhere in a template.
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key == "Fn::Transform"
                and isinstance(value, dict)
                and value.get("Name") == "AWS::Include"
            ):
                _rebase_in(value, "Parameters.Location", template_dir, build_dir)
            else:
                _rebase_includes(value, template_dir, build_dir)
    elif isinstance(node, list):
        for item in node:
            _rebase_includes(item, template_dir, build_dir)


def _rebase_resource(resource: dict[str, Any], template_dir: Path, build_dir: Path) -> None:
    kind = resource.get("Type")
    properties = resource.get("Properties")
    if isinstance(properties, dict) and kind in LOCAL_PATHS:
        image = kind in IMAGE_FUNCTIONS and properties.get("PackageType") == "Image"
        if image:  # only an image archive on disk (ImageUri: a .tar) is a path
            original = properties.get("ImageUri")
            moved = rebased(original, template_dir, build_dir)
            if moved is not None and (template_dir / str(original)).is_file():
                properties["ImageUri"] = moved
        else:
            for dotted in LOCAL_PATHS[str(kind)]:
                _rebase_in(properties, dotted, template_dir, build_dir)
        if kind == "AWS::Serverless::GraphQLApi":
            for section in ("Functions", "Resolvers"):
                _rebase_graphql_code(properties.get(section), template_dir, build_dir)
    metadata = resource.get("Metadata")
    if isinstance(metadata, dict) and ASSET_PATH in metadata:
        _rebase_in(metadata, ASSET_PATH, template_dir, build_dir)


def built_template(
    document: Mapping[str, Any],
    *,
    template_dir: Path,
    build_dir: Path,
    built: Mapping[str, tuple[str, str]],
    default_code: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The template for ``build_dir``: each resource of ``built`` (logical id -> (property,
    archive path relative to ``build_dir``)) points at its archive; every relative path is
    rebased; resources of ``default_code`` (logical id -> property), left to SAM and using the
    template's folder by default, name it. The rest is left as it was."""
    out = copy.deepcopy(dict(document))
    resources = out.get("Resources") or {}
    for resource in resources.values():
        if isinstance(resource, dict):
            _rebase_resource(resource, template_dir, build_dir)
    for section, names in METADATA_PATHS.items():
        holder = (out.get("Metadata") or {}).get(section)
        for name in names:
            _rebase_in(holder, name, template_dir, build_dir)
    globals_ = out.get("Globals")
    if isinstance(globals_, dict):
        for section, name in (("Function", "CodeUri"), ("LayerVersion", "ContentUri")):
            _rebase_in(globals_.get(section), name, template_dir, build_dir)
    _rebase_includes(out, template_dir, build_dir)
    for logical_id, prop in (default_code or {}).items():
        properties = resources[logical_id].setdefault("Properties", {})
        properties[prop] = rebased(".", template_dir, build_dir)
    for logical_id, (prop, archive) in built.items():
        resource = resources[logical_id]
        properties = resource.get("Properties")
        if not isinstance(properties, dict):
            properties = resource["Properties"] = {}
        properties[prop] = PurePosixPath(archive).as_posix()
    return out


def work_dir(build_dir: Path) -> Path:
    """Beside ``build_dir``: its lock, and the folders a build is staged in (never to be packed
    into a function whose code folder holds the build directory)."""
    return build_dir.parent / f".{build_dir.name}.nativebuild"


@contextlib.contextmanager
def staged_build_dir(build_dir: Path) -> Iterator[Path]:
    """A fresh folder (in :func:`work_dir`) to write the whole build into. When the block ends
    without an error it replaces ``build_dir`` (two renames: the old one away, the new one in);
    on any error, Ctrl-C included, it is removed and ``build_dir`` is left as it was. One
    build of a directory at a time (a lock file); folders that a killed build left behind are
    removed under that lock."""
    work = work_dir(build_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(work / "lock"))
    except OSError as err:
        msg = f"Cannot create {work}: {err}."
        raise ArchiveError(msg, hint="Choose a --build-dir you can write to.") from err
    with lock:
        for leftover in work.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix="stage-", dir=work))
        try:
            stage.chmod(0o755)
            yield stage
            _swap_in(stage, build_dir)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


def _swap_in(stage: Path, build_dir: Path) -> None:
    old = work_dir(build_dir) / f"old-{uuid.uuid4().hex[:12]}"
    try:
        if build_dir.exists() or build_dir.is_symlink():
            build_dir.rename(old)
        stage.rename(build_dir)
    except OSError as err:
        if old.exists() and not build_dir.exists():
            old.rename(build_dir)  # put the previous build back
        msg = f"Cannot replace {build_dir}: {err}."
        raise ArchiveError(msg, hint="Check that nothing holds the build directory open.") from err
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(build_dir.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Write ``path`` inside a staged build directory (the swap makes it atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        msg = f"Cannot write {path}: {err}."
        raise ArchiveError(msg, hint="Check free disk space.") from err


def write_built_template(stage: Path, document: Mapping[str, Any]) -> Path:
    path = stage / BUILT_TEMPLATE
    write_text(path, dump_template(document))
    return path


def write_sam_manifest(stage: Path, manifest: Mapping[str, Any]) -> Path:
    path = stage / MANIFEST
    write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
