"""SAM templates as data: CloudFormation's short tags, JSON, Globals, writing back, and the
intrinsic functions that can be decided before deploying."""

from __future__ import annotations

from typing import Any

import pytest

from nativebuild.errors import ConfigError, TemplateError
from nativebuild.sam.intrinsics import NO_VALUE, Resolver, Unresolvable
from nativebuild.sam.request import parse_parameter_overrides
from nativebuild.sam.template import (
    dump_template,
    merge_globals,
    parse_template,
    properties_with_globals,
)

SHORT_TAGS = """\
AWSTemplateFormatVersion: 2010-09-09
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt Role.Arn
      Other: !GetAtt [Role, Arn]
      CodeUri: !Sub "src/${Folder}"
      Runtime: !Ref PythonRuntime
      Layers: !Split [",", !Join [",", [a, b]]]
      Memory: !If [IsProd, 1024, !Ref "AWS::NoValue"]
      Map: !FindInMap {Fn::Sub: x}
      Cond: !Condition IsProd
      Zip: !Base64 abc
      Account: "0123"
"""


def test_short_tags_become_their_long_forms() -> None:
    document = parse_template(SHORT_TAGS, origin="t")
    props = document["Resources"]["Fn"]["Properties"]
    assert props["Role"] == {"Fn::GetAtt": ["Role", "Arn"]}
    assert props["Other"] == {"Fn::GetAtt": ["Role", "Arn"]}
    assert props["CodeUri"] == {"Fn::Sub": "src/${Folder}"}
    assert props["Runtime"] == {"Ref": "PythonRuntime"}
    assert props["Layers"] == {"Fn::Split": [",", {"Fn::Join": [",", ["a", "b"]]}]}
    assert props["Memory"] == {"Fn::If": ["IsProd", 1024, {"Ref": "AWS::NoValue"}]}
    assert props["Map"] == {"Fn::FindInMap": {"Fn::Sub": "x"}}
    assert props["Cond"] == {"Condition": "IsProd"}
    assert props["Zip"] == {"Fn::Base64": "abc"}
    assert document["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a date


def test_pyyaml_safe_loader_is_left_as_it_was() -> None:
    import yaml

    parse_template(SHORT_TAGS, origin="t")
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !Ref B")


def test_json_templates_are_read_as_json() -> None:
    document = parse_template(
        '{"Resources": {"A": {"Type": "X", "Properties": {"V": "1e3"}}}}', origin="t"
    )
    assert document["Resources"]["A"]["Properties"]["V"] == "1e3"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "a: [unclosed\n"])
def test_not_a_template(text: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(text, origin="bad.yaml")
    assert "bad.yaml" in str(info.value)
    assert info.value.exit_code == 20


def test_dump_round_trips_in_order_with_long_forms() -> None:
    document = parse_template(SHORT_TAGS, origin="t")
    text = dump_template(document)
    assert parse_template(text, origin="again") == document
    assert list(parse_template(text, origin="again")["Resources"]["Fn"]["Properties"]) == list(
        document["Resources"]["Fn"]["Properties"]
    )
    assert "Fn::GetAtt:" in text
    assert "!" not in text
    assert "Account: '0123'" in text
    assert "&" not in dump_template({"A": (shared := {"x": 1}), "B": shared})  # no anchors
    assert "|" in dump_template({"Code": "line one\nline two\n"})


def test_globals_merge_as_samtranslator_does() -> None:
    assert merge_globals("global", "local") == "local"
    assert merge_globals(["g1"], ["l1"]) == ["g1", "l1"]
    assert merge_globals({"a": 1, "b": {"x": 1}}, {"b": {"y": 2}, "c": 3}) == {
        "a": 1, "b": {"x": 1, "y": 2}, "c": 3,
    }  # fmt: skip
    assert merge_globals({"Ref": "A"}, {"Ref": "B"}) == {"Ref": "B"}  # intrinsics are values
    assert merge_globals({"Variables": {"A": 1}}, {"Ref": "B"}) == {"Ref": "B"}
    document = {
        "Globals": {"Function": {"Runtime": "python3.9", "Layers": ["g"], "Architectures": ["x86_64"]}},
        "Resources": {},
    }  # fmt: skip
    function = {"Type": "AWS::Serverless::Function", "Properties": {"Layers": ["l"]}}
    assert properties_with_globals(document, function) == {
        "Runtime": "python3.9", "Layers": ["g", "l"], "Architectures": ["x86_64"],
    }  # fmt: skip
    plain = {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.12"}}
    assert properties_with_globals(document, plain) == {"Runtime": "python3.12"}


def test_parameter_overrides_as_sam_takes_them() -> None:
    assert parse_parameter_overrides(["A=1 B='two words'", "C=x=y", "ParameterKey=D,ParameterValue=4"]) == {
        "A": "1", "B": "two words", "C": "x=y", "D": "4",
    }  # fmt: skip
    with pytest.raises(ConfigError):
        parse_parameter_overrides(["novalue"])


# --- intrinsics ---------------------------------------------------------------------------------

TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Runtime": {"Type": "String", "Default": "python3.12"},
        "Stage": {"Type": "String", "Default": "dev"},
        "Subnets": {"Type": "CommaDelimitedList", "Default": "a, b,c"},
        "Ids": {"Type": "List<AWS::EC2::Subnet::Id>"},
        "Count": {"Type": "Number", "Default": 3},
        "Flag": {"Type": "String", "Default": True},
        "NoDefault": {"Type": "String"},
    },
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Equals": [{"Ref": "Count"}, 3]}]},
        "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "b"]}]},
        "Loop": {"Fn::Not": [{"Condition": "Loop"}]},
        "Undecided": {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]},
    },
    "Mappings": {"Runtimes": {"dev": {"name": "python3.11"}}},
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver.for_template(TEMPLATE, {"Ids": "s-1,s-2"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Runtime"}, "python3.12"),
        ({"Ref": "Subnets"}, ["a", "b", "c"]),
        ({"Ref": "Ids"}, ["s-1", "s-2"]),
        ({"Ref": "Count"}, "3"),
        ({"Ref": "Flag"}, "true"),
        ({"Fn::Sub": "src/${Stage}/${!Literal}"}, "src/dev/${Literal}"),
        ({"Fn::Sub": ["${A}-${Stage}", {"A": {"Ref": "Runtime"}}]}, "python3.12-dev"),
        ({"Fn::Join": ["/", ["a", {"Ref": "Stage"}]]}, "a/dev"),
        ({"Fn::Select": [1, {"Ref": "Subnets"}]}, "b"),
        ({"Fn::Split": ["-", "x-y"]}, ["x", "y"]),
        ({"Fn::FindInMap": ["Runtimes", {"Ref": "Stage"}, "name"]}, "python3.11"),
        ({"Fn::If": ["IsProd", "p", "d"]}, "d"),
        ({"Fn::If": ["Both", "yes", "no"]}, "yes"),
        ({"Fn::If": ["Either", "yes", "no"]}, "no"),
        ({"Fn::If": ["IsProd", "p", {"Ref": "AWS::NoValue"}]}, NO_VALUE),
        ([{"Fn::If": ["IsProd", "p", {"Ref": "AWS::NoValue"}]}, "kept"], ["kept"]),
        ({"Key": {"Ref": "AWS::NoValue"}, "Other": 1}, {"Other": 1}),
        ("plain", "plain"),
    ],
)
def test_decidable_intrinsics(resolver: Resolver, value: Any, expected: Any) -> None:
    assert resolver.resolve(value) == expected


def test_overrides_win_over_defaults_and_set_pseudo_parameters() -> None:
    resolver = Resolver.for_template(TEMPLATE, {"Stage": "prod", "AWS::Region": "eu-west-1"})
    assert resolver.resolve({"Fn::If": ["IsProd", "p", "d"]}) == "p"
    assert resolver.condition("Undecided") is True
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}"}) == "eu-west-1"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"Fn::GetAtt": ["Bucket", "Arn"]}, "!GetAtt Bucket.Arn is only known once the stack is deployed"),
        ({"Ref": "Bucket"}, "!Ref Bucket names a resource"),
        ({"Ref": "Nothing"}, "!Ref Nothing names no parameter or resource"),
        ({"Ref": "NoDefault"}, "the parameter NoDefault has no Default"),
        ({"Ref": "AWS::Region"}, "the pseudo parameter AWS::Region"),
        ({"Fn::Sub": "${Bucket.Arn}"}, "${Bucket.Arn} in !Sub is an attribute"),
        ({"Fn::ImportValue": "x"}, "Fn::ImportValue is only known once"),
        ({"Fn::If": ["Undecided", "a", "b"]}, "the pseudo parameter AWS::Region"),
        ({"Fn::If": ["Loop", "a", "b"]}, "the condition Loop refers to itself"),
        ({"Fn::If": ["Missing", "a", "b"]}, "the condition Missing is not declared"),
        ({"Fn::Select": [5, ["a"]]}, "has no value"),
        ({"Fn::FindInMap": ["Runtimes", "prod", "name"]}, "is not in the template's Mappings"),
    ],
)  # fmt: skip
def test_what_only_deploying_knows_is_unresolvable(
    resolver: Resolver, value: Any, reason: str
) -> None:
    with pytest.raises(Unresolvable) as info:
        resolver.resolve(value)
    assert reason in info.value.reason
