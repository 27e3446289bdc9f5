"""Which resources of a template nativebuild builds, and which it leaves as they are.

Built, as ``sam build`` builds them:

- ``AWS::Serverless::Function`` (``CodeUri``, Globals merged) and ``AWS::Lambda::Function``
  (``Code``) with a ``python3.X`` Runtime, the Zip package type and a code folder;
- ``AWS::Serverless::LayerVersion`` (``ContentUri``) and ``AWS::Lambda::LayerVersion``
  (``Content``) whose ``Metadata.BuildMethod`` is a ``python3.X`` runtime (or ``python-uv``),
  for ``Metadata.BuildArchitecture`` (default x86_64).

Left as they are, each with its reason: other runtimes and build methods (SAM's to build),
image functions, inline code, code already in S3 or already a .zip, ``Metadata.SkipBuild``,
layers without a BuildMethod (SAM does not build those either), resources whose Condition is
false, nested stacks. A resource that cannot be built as written is an error naming it and the
property: a Python function whose code folder is missing, an intrinsic that cannot be decided,
an unknown Python runtime, ``BuildMethod: makefile`` on a Python function or a layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nativebuild.errors import ConfigError, TemplateError
from nativebuild.sam.intrinsics import NO_VALUE, Resolver, Unresolvable
from nativebuild.sam.template import is_intrinsic, properties_with_globals
from nativebuild.targets import Architecture, runtimes

# Where each buildable type keeps its code.
CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Lambda::Function": "Code",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Lambda::LayerVersion": "Content",
}
FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
LAYER_TYPES = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
# Other code SAM builds (SAM CLI 1.170: web functions, Node.js by default), left to it.
SAM_ONLY = {"AWS::Serverless::WebFunction": "web function"}
NESTED_STACKS = {
    "AWS::Serverless::Application": "Location",
    "AWS::CloudFormation::Stack": "TemplateURL",
}
DEFAULT_CODE_URI = "."  # SAM's, for a function that names none
PYTHON_UV = "python-uv"  # SAM's uv builder (aws-lambda-builders): the same inputs for nativebuild
MAKEFILE = "makefile"
NATIVEBUILD_IMAGE = (
    "nativebuild-image"  # an image function nativebuild builds (README, Container images)
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Buildable:
    """A Python function or layer nativebuild builds."""

    logical_id: str
    type: str
    kind: str  # "function" | "layer" | "image"
    runtime: str  # python3.X
    arch: Architecture
    code_property: str  # CodeUri | Code | ContentUri | Content
    code_dir: Path  # absolute
    layers: tuple[str, ...] = ()  # a function's layers that are resources of this template
    layer_count: int = 0  # all its layers, those deployed from elsewhere (ARNs) included
    handler: str | None = None  # an image's CMD
    image_tag: str | None = None  # an image's Metadata.DockerTag

    @property
    def is_layer(self) -> bool:
        return self.kind == "layer"

    @property
    def is_image(self) -> bool:
        return self.kind == "image"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeftAlone:
    """A function or layer nativebuild does not build, and why."""

    logical_id: str
    type: str
    reason: str
    runtime: str | None = None
    arch: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inventory:
    build: tuple[Buildable, ...]
    left: tuple[LeftAlone, ...]
    # Function or layer resources left as they are whose code path must still point at the
    # source, by logical id: the property to set (an absent CodeUri means the template's folder).
    default_code: Mapping[str, str] = dataclasses.field(default_factory=dict)


class _Reader:
    """Reads one resource's properties, naming it in every error."""

    def __init__(
        self, logical_id: str, resource: Mapping[str, Any], properties: Mapping[str, Any],
        resolver: Resolver,
    ) -> None:  # fmt: skip
        self.logical_id = logical_id
        self.type = str(resource.get("Type"))
        self.resource = resource
        self.properties = properties
        metadata = resource.get("Metadata")
        self.metadata = metadata if isinstance(metadata, dict) else {}
        self.resolver = resolver

    def where(self, prop: str) -> str:
        return f"{self.logical_id} ({self.type}), {prop}"

    def value(self, prop: str, raw: Any) -> Any:
        try:
            return self.resolver.resolve(raw)
        except Unresolvable as why:
            msg = f"{self.where(prop)}: cannot be decided before deploying: {why.reason}."
            hint = why.hint or (
                "Write a value nativebuild can read (a parameter with a Default, or "
                "--parameter-overrides), or build this template with sam build."
            )
            raise TemplateError(msg, hint=hint) from None

    def prop(self, name: str, default: Any = None) -> Any:
        if name not in self.properties:
            return default
        found = self.value(name, self.properties[name])
        return default if found is NO_VALUE else found

    def meta(self, name: str, default: Any = None) -> Any:
        if name not in self.metadata:
            return default
        found = self.value(f"Metadata.{name}", self.metadata[name])
        return default if found is NO_VALUE else found

    def text(self, prop: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            msg = f"{self.where(prop)}: expected a string, found {value!r}."
            raise TemplateError(msg)
        return value.strip()

    def left(
        self, reason: str, *, runtime: str | None = None, arch: str | None = None
    ) -> LeftAlone:
        return LeftAlone(
            logical_id=self.logical_id, type=self.type, reason=reason, runtime=runtime, arch=arch
        )


def _skip_build(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _python_runtime(reader: _Reader, prop: str, name: str) -> str:
    known = runtimes()
    if name not in known:
        msg = (
            f"{reader.where(prop)}: {name} is not a Python runtime nativebuild builds "
            f"({', '.join(known)})."
        )
        hint = "Lambda has deprecated the others; move the function to a supported runtime."
        raise ConfigError(msg, hint=hint)
    return name


def _architecture(reader: _Reader, prop: str, value: Any) -> Architecture:
    try:
        return Architecture.parse(reader.text(prop, value))
    except ConfigError as err:
        msg = f"{reader.where(prop)}: {err}"
        raise ConfigError(msg) from None


def _condition_false(reader: _Reader) -> str | None:
    name = reader.resource.get("Condition")
    if not isinstance(name, str):
        return None
    try:
        return None if reader.resolver.condition(name) else name
    except Unresolvable:
        return None  # undecided: build it, as sam build does


def _code_dir(reader: _Reader, prop: str, value: Any, template_dir: Path) -> Path | LeftAlone:
    """The code folder of a resource to build, or why it has none to build."""
    if isinstance(value, dict):
        if "ZipFile" in value:
            return reader.left(f"inline code ({prop}.ZipFile): nothing to build")
        if "ImageUri" in value:
            return reader.left(f"image ({prop}.ImageUri): left to SAM")
        return reader.left(f"code already in S3 ({prop}): deployed as it is")
    path = reader.text(prop, value)
    if path.startswith(("s3://", "http://", "https://")):
        return reader.left(f"code already in S3 ({path}): deployed as it is")
    folder = (template_dir / path).resolve()
    if folder.is_file() and folder.suffix == ".zip":
        return reader.left(f"{prop} is already an archive ({path}): deployed as it is")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        msg = f"{reader.where(prop)}: {path!r} ({folder}) {what}."
        hint = f"Point {prop} at the folder holding the code (and its requirements.txt)."
        raise TemplateError(msg, hint=hint)
    return folder


def _read_function(
    reader: _Reader, template_dir: Path, layer_ids: frozenset[str]
) -> Buildable | LeftAlone:
    code_property = CODE_PROPERTIES[reader.type]
    package_type = reader.prop("PackageType", "Zip")
    if package_type == "Image":
        if (
            reader.meta("BuildMethod") == NATIVEBUILD_IMAGE
            and reader.type == "AWS::Serverless::Function"
        ):
            return _read_image(reader, template_dir)
        return reader.left("image function (PackageType: Image): left to SAM")
    if "InlineCode" in reader.properties:
        return reader.left("inline code (InlineCode): nothing to build")
    if _skip_build(reader.meta("SkipBuild")):
        return reader.left("Metadata.SkipBuild is true")
    runtime = reader.prop("Runtime")
    if runtime is None:
        return reader.left("no Runtime: left to SAM")
    runtime = reader.text("Runtime", runtime)
    architectures = reader.prop("Architectures", ["x86_64"])
    if not isinstance(architectures, list) or len(architectures) != 1:
        msg = (
            f"{reader.where('Architectures')}: expected one architecture, found {architectures!r}."
        )
        hint = "Lambda runs a function on one architecture: x86_64 or arm64 (Globals lists add up)."
        raise TemplateError(msg, hint=hint)
    arch = _architecture(reader, "Architectures", architectures[0])
    if not runtime.startswith("python"):
        return reader.left(f"{runtime}: left to SAM", runtime=runtime, arch=arch.value)
    runtime = _python_runtime(reader, "Runtime", runtime)
    method = reader.meta("BuildMethod")
    if method is not None:
        method = reader.text("Metadata.BuildMethod", method)
        if method == MAKEFILE:
            raise _makefile_error(reader)
        if method != PYTHON_UV and not method.startswith("python"):
            return reader.left(
                f"Metadata.BuildMethod {method}: left to SAM", runtime=runtime, arch=arch.value
            )
    code = _code_dir(
        reader, code_property, reader.prop(code_property, DEFAULT_CODE_URI), template_dir
    )
    if isinstance(code, LeftAlone):
        return dataclasses.replace(code, runtime=runtime, arch=arch.value)
    local, count = _layers(reader, layer_ids)
    return Buildable(
        logical_id=reader.logical_id, type=reader.type, kind="function", runtime=runtime,
        arch=arch, code_property=code_property, code_dir=code, layers=local, layer_count=count,
    )  # fmt: skip


def _read_image(reader: _Reader, template_dir: Path) -> Buildable:
    """``PackageType: Image`` with ``Metadata.BuildMethod: nativebuild-image``: its runtime in
    ``Metadata.Runtime``, handler in ``ImageConfig.Command[0]`` (else ``Metadata.Handler``),
    source in ``Metadata.DockerContext`` (else ``CodeUri``), tag in ``Metadata.DockerTag``."""
    runtime = reader.meta("Runtime")
    if runtime is None:
        msg = f"{reader.where('Metadata.Runtime')}: missing; a nativebuild-image function needs it."
        raise TemplateError(msg, hint="Set Metadata.Runtime: python3.12 (the image's runtime).")
    runtime = _python_runtime(reader, "Metadata.Runtime", reader.text("Metadata.Runtime", runtime))
    architectures = reader.prop("Architectures", ["x86_64"])
    if not isinstance(architectures, list) or len(architectures) != 1:
        msg = (
            f"{reader.where('Architectures')}: expected one architecture, found {architectures!r}."
        )
        raise TemplateError(msg, hint="An image is built for one architecture: x86_64 or arm64.")
    arch = _architecture(reader, "Architectures", architectures[0])
    config = reader.prop("ImageConfig", {})
    command = config.get("Command") if isinstance(config, dict) else None
    handler = command[0] if isinstance(command, list) and command else reader.meta("Handler")
    if handler is None:
        msg = f"{reader.where('ImageConfig.Command')}: missing; the image's CMD is its handler."
        raise TemplateError(
            msg, hint="Set ImageConfig.Command: [app.handler] (or Metadata.Handler)."
        )
    if "DockerContext" in reader.metadata:
        prop, source = "Metadata.DockerContext", reader.meta("DockerContext")
    else:
        prop, source = "CodeUri", reader.prop("CodeUri", DEFAULT_CODE_URI)
    code = _code_dir(reader, prop, source, template_dir)
    if isinstance(code, LeftAlone):  # pragma: no cover - an image's source is a folder
        msg = f"{reader.where(prop)}: {code.reason}."
        raise TemplateError(msg)
    return Buildable(
        logical_id=reader.logical_id, type=reader.type, kind="image", runtime=runtime, arch=arch,
        code_property="ImageUri", code_dir=code,
        handler=reader.text("ImageConfig.Command", handler),
        image_tag=reader.text("Metadata.DockerTag", reader.meta("DockerTag", "latest")),
    )  # fmt: skip


def _layers(reader: _Reader, layer_ids: frozenset[str]) -> tuple[tuple[str, ...], int]:
    """A function's layers: those of this template (``!Ref`` to them), and how many in all.
    An entry that cannot be decided counts as a layer from elsewhere."""
    entries = reader.properties.get("Layers") or []
    if is_intrinsic(entries):
        try:
            entries = reader.resolver.resolve(entries)
        except Unresolvable:
            return (), 0
    if not isinstance(entries, list):
        return (), 0
    local: list[str] = []
    count = 0
    for entry in entries:
        chosen = _chosen_branch(reader.resolver, entry)
        if chosen is NO_VALUE:
            continue
        count += 1
        if isinstance(chosen, dict) and chosen.get("Ref") in layer_ids:
            local.append(str(chosen["Ref"]))
    return tuple(local), count


def _chosen_branch(resolver: Resolver, entry: Any) -> Any:
    """``entry`` with any ``!If`` decided (a ``!Ref`` to a layer is kept as it is)."""
    while isinstance(entry, dict) and isinstance(entry.get("Fn::If"), list):
        condition, when_true, when_false = ([*entry["Fn::If"], None, None, None])[:3]
        try:
            entry = when_true if resolver.condition(str(condition)) else when_false
        except Unresolvable:
            return entry
    if entry == {"Ref": "AWS::NoValue"}:
        return NO_VALUE
    return entry


def _read_layer(reader: _Reader, template_dir: Path) -> Buildable | LeftAlone:
    code_property = CODE_PROPERTIES[reader.type]
    method = reader.meta("BuildMethod")
    if method is None:
        return reader.left("no Metadata.BuildMethod: deployed as it is (as sam build does)")
    method = reader.text("Metadata.BuildMethod", method)
    if method == MAKEFILE:
        raise _makefile_error(reader)
    if _skip_build(reader.meta("SkipBuild")):
        return reader.left("Metadata.SkipBuild is true")
    arch = _architecture(
        reader, "Metadata.BuildArchitecture", reader.meta("BuildArchitecture", "x86_64")
    )
    if method == PYTHON_UV:
        compatible = reader.prop("CompatibleRuntimes", [])
        pythons = [r for r in compatible if isinstance(r, str) and r.startswith("python")]
        if not pythons:
            msg = f"{reader.where('CompatibleRuntimes')}: BuildMethod python-uv needs a python3.X runtime here."
            raise TemplateError(msg, hint="List the runtime in CompatibleRuntimes.")
        runtime = _python_runtime(reader, "CompatibleRuntimes", pythons[0])
    elif method.startswith("python"):
        runtime = _python_runtime(reader, "Metadata.BuildMethod", method)
    else:
        return reader.left(f"Metadata.BuildMethod {method}: left to SAM", arch=arch.value)
    if code_property not in reader.properties:
        msg = f"{reader.where(code_property)}: missing; a layer to build needs its folder."
        raise TemplateError(
            msg, hint=f"Set {code_property} to the folder holding requirements.txt."
        )
    code = _code_dir(reader, code_property, reader.prop(code_property), template_dir)
    if isinstance(code, LeftAlone):
        return dataclasses.replace(code, runtime=runtime, arch=arch.value)
    return Buildable(
        logical_id=reader.logical_id, type=reader.type, kind="layer", runtime=runtime, arch=arch,
        code_property=code_property, code_dir=code,
    )  # fmt: skip


def _makefile_error(reader: _Reader) -> TemplateError:
    msg = (
        f"{reader.where('Metadata.BuildMethod')}: makefile builds run your Makefile, which "
        "nativebuild sam build does not do."
    )
    hint = (
        "Remove BuildMethod: makefile to let nativebuild build it, or keep sam build and call "
        "nativebuild from the Makefile (README, SAM: the makefile route)."
    )
    return TemplateError(msg, hint=hint)


def _contains_lambda(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("Type") in CODE_PROPERTIES:
            return True
        return any(_contains_lambda(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_lambda(item) for item in value)
    return False


def read_resources(
    document: Mapping[str, Any], *, template_dir: Path, resolver: Resolver
) -> Inventory:
    """Sort the template's functions and layers into those to build and those left alone."""
    resources = document.get("Resources") or {}
    layer_ids = frozenset(
        name for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") in LAYER_TYPES
    )  # fmt: skip
    build: list[Buildable] = []
    left: list[LeftAlone] = []
    default_code: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if str(logical_id).startswith("Fn::ForEach::"):
            if _contains_lambda(resource):
                msg = f"{logical_id}: Fn::ForEach over functions or layers is not expanded by nativebuild sam build."
                raise TemplateError(
                    msg, hint="Write the functions out, or build this template with sam build."
                )
            continue
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        if kind in SAM_ONLY:
            reason = f"{SAM_ONLY[str(kind)]}: left to SAM"
            left.append(LeftAlone(logical_id=logical_id, type=str(kind), reason=reason))
            continue
        if kind in NESTED_STACKS:
            reason = "nested stack: its template is not built by nativebuild (build it on its own)"
            left.append(LeftAlone(logical_id=logical_id, type=str(kind), reason=reason))
            continue
        if kind not in CODE_PROPERTIES:
            continue
        reader = _Reader(
            logical_id, resource, properties_with_globals(document, resource), resolver
        )
        condition = _condition_false(reader)
        if condition is not None:
            outcome: Buildable | LeftAlone = reader.left(
                f"its Condition {condition} is false: not deployed"
            )
        elif kind in FUNCTION_TYPES:
            outcome = _read_function(reader, template_dir, layer_ids)
        else:
            outcome = _read_layer(reader, template_dir)
        if isinstance(outcome, Buildable):
            build.append(outcome)
            continue
        left.append(outcome)
        if kind == "AWS::Serverless::Function" and _uses_default_code(reader):
            default_code[logical_id] = "CodeUri"
    return Inventory(build=tuple(build), left=tuple(left), default_code=default_code)


def _uses_default_code(reader: _Reader) -> bool:
    """A Zip function whose code is the template's own folder only by SAM's default."""
    raw = reader.properties
    return (
        "CodeUri" not in raw and "InlineCode" not in raw and "ImageUri" not in raw
        and raw.get("PackageType", "Zip") == "Zip"
    )  # fmt: skip
