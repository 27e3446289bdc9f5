"""SAM/CloudFormation templates as data: finding, reading and writing them, and Globals.

The parser is PyYAML's safe loader with one multi-constructor for CloudFormation's short tags
(``!Ref X``, ``!Sub ...``, ``!GetAtt A.B``), each read as its long form (``{"Ref": "X"}``,
``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": ["A", "B"]}``): what SAM CLI itself does
(``samcli/yamlhelper.py``, from the AWS CLI), so a template means to nativebuild what it means to
``sam build``. Timestamps stay strings (``AWSTemplateFormatVersion: 2010-09-09``) and a template
that is JSON is read as JSON. The built template is written as SAM CLI writes its own: YAML, keys
in their order, intrinsic functions in their long form, comments not kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nativebuild.errors import TemplateError

# Resource types whose properties Globals extends, and the Globals section for each.
GLOBALS_SECTIONS = {
    "AWS::Serverless::Function": "Function",
    "AWS::Serverless::LayerVersion": "LayerVersion",
}
# Intrinsic functions without the Fn:: prefix in their long form.
_UNPREFIXED = frozenset({"Ref", "Condition"})


class _CfnLoader(yaml.SafeLoader):
    """The safe loader plus CloudFormation's tags (add_constructor copies the tables, so
    PyYAML's own SafeLoader is left as it was)."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in _UNPREFIXED else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = str(loader.construct_scalar(node)).split(".", 1)  # !GetAtt Resource.Attribute
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)  # noqa: S101 - the three kinds of node
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)  # noqa: S101 - timestamps are scalars
    return str(loader.construct_scalar(node))


_CfnLoader.add_multi_constructor("!", _intrinsic)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


class _CfnDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - PyYAML's signature
        return True  # every value written out in full: no &anchors in a template


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value.startswith("0"):  # account ids and other digits that must stay strings
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_CfnDumper.add_representer(str, _represent_str)


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` (YAML or JSON), checked to have a Resources mapping."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        msg = f"Template {path} {what}."
        raise TemplateError(msg, hint="Pass -t with the path of your template.yaml.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        msg = f"Cannot read the template {path}: {err}."
        raise TemplateError(msg, hint="Save it as UTF-8 text.") from err
    document = parse_template(text, origin=str(path))
    resources = document.get("Resources")
    if not isinstance(resources, dict) or not resources:
        msg = f"Template {path} has no Resources."
        raise TemplateError(msg, hint="A SAM template declares its functions under Resources.")
    return document


def parse_template(text: str, *, origin: str) -> dict[str, Any]:
    """A template's text as data: JSON when it is JSON, else YAML with CloudFormation tags."""
    document: Any
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a safe loader's subclass
        except yaml.YAMLError as err:
            msg = f"Cannot parse the template {origin}: {err}"
            raise TemplateError(msg, hint="Fix the YAML at the line shown.") from err
    if not isinstance(document, dict):
        msg = f"Template {origin} is not a mapping of sections (Resources, Parameters, ...)."
        raise TemplateError(msg)
    return document


def dump_template(document: Mapping[str, Any]) -> str:
    """``document`` as YAML, in its own key order, long-form intrinsics."""
    return yaml.dump(
        dict(document), Dumper=_CfnDumper, default_flow_style=False, sort_keys=False,
        allow_unicode=True, width=4096,
    )  # fmt: skip


def is_intrinsic(value: Any) -> bool:
    """Whether ``value`` is one intrinsic function call (``{"Ref": ...}``, ``{"Fn::If": ...}``)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return isinstance(key, str) and (key in _UNPREFIXED or key.startswith("Fn::"))


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rules (samtranslator's globals plugin): a resource's own value wins over
    a global one, mappings merge key by key, lists are the global entries then the
    resource's; an intrinsic function counts as a plain value."""
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    mappings = isinstance(global_value, dict) and isinstance(local_value, dict)
    if mappings and not is_intrinsic(global_value) and not is_intrinsic(local_value):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in merged else value
        return merged
    return local_value


def properties_with_globals(
    document: Mapping[str, Any], resource: Mapping[str, Any]
) -> dict[str, Any]:
    """A resource's Properties as SAM sees them, with the template's Globals merged in."""
    properties = resource.get("Properties") or {}
    if not isinstance(properties, dict):
        return {}
    section = GLOBALS_SECTIONS.get(str(resource.get("Type")))
    globals_ = document.get("Globals") or {}
    defaults = globals_.get(section) if section and isinstance(globals_, dict) else None
    if not isinstance(defaults, dict):
        return copy.deepcopy(properties)
    merged = merge_globals(copy.deepcopy(defaults), copy.deepcopy(properties))
    assert isinstance(merged, dict)  # noqa: S101 - two mappings merge into one
    return merged
