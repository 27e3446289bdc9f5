"""CloudFormation's intrinsic functions, where they can be decided before deploying.

What a build needs from a template (a runtime, a code folder, an architecture, a build method)
may be written with intrinsics: ``!Ref`` to a parameter (its ``Default``, or a value from
``--parameter-overrides``), ``!Sub``, ``!Join``, ``!Select``, ``!Split``, ``!FindInMap``, and
``!If`` on a condition built from those (``!Equals``, ``!And``, ``!Or``, ``!Not``). Anything
only known once deployed (``!GetAtt``, a ``!Ref`` to a resource, ``!ImportValue``, pseudo
parameters such as ``AWS::Region`` unless overridden) raises :class:`Unresolvable`, which the
caller turns into an error naming the resource and property.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from nativebuild.sam.template import is_intrinsic

# AWS::NoValue: the property (or list entry) is removed.
NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda _self: "AWS::NoValue"})()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_CONDITION_FUNCTIONS = frozenset({"Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition"})


class Unresolvable(Exception):
    """An intrinsic function whose value is only known once deployed (or that is malformed)."""

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _parameter_value(definition: Mapping[str, Any], value: Any) -> Any:
    """A parameter's value as ``Ref`` gives it: a string, or a list for list types."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    kind = str(definition.get("Type", "String"))
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in text.split(",")] if text else []
    return text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Resolver:
    """Resolves intrinsics against one template's parameters, conditions and mappings."""

    parameters: Mapping[str, Any]  # name -> value (pseudo parameters included when given)
    undecided: Mapping[str, str]  # parameters without a value: name -> why
    conditions: Mapping[str, Any]
    mappings: Mapping[str, Any]
    resources: frozenset[str]

    @classmethod
    def for_template(cls, document: Mapping[str, Any], overrides: Mapping[str, str]) -> Resolver:
        declared = document.get("Parameters") or {}
        declared = declared if isinstance(declared, dict) else {}
        values: dict[str, Any] = {}
        undecided: dict[str, str] = {}
        for name, declaration in declared.items():
            definition = declaration if isinstance(declaration, dict) else {}
            if name in overrides:
                values[name] = _parameter_value(definition, overrides[name])
            elif "Default" in definition:
                values[name] = _parameter_value(definition, definition["Default"])
            else:
                undecided[name] = "has no Default and no value in --parameter-overrides"
        for name, value in overrides.items():
            if name.startswith("AWS::"):  # pseudo parameters, as sam build takes them
                values[name] = value
        conditions = document.get("Conditions") or {}
        mappings = document.get("Mappings") or {}
        resources = document.get("Resources") or {}
        return cls(
            parameters=values,
            undecided=undecided,
            conditions=conditions if isinstance(conditions, dict) else {},
            mappings=mappings if isinstance(mappings, dict) else {},
            resources=frozenset(resources) if isinstance(resources, dict) else frozenset(),
        )

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced by its value; NO_VALUE for AWS::NoValue
        (dropped from lists and mappings)."""
        if is_intrinsic(value):
            ((name, argument),) = value.items()
            return self._call(name, argument)
        if isinstance(value, dict):
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        return value

    def condition(self, name: str, _seen: frozenset[str] = frozenset()) -> bool:
        """The value of the template condition ``name``."""
        if name in _seen:
            msg = f"the condition {name} refers to itself"
            raise Unresolvable(msg)
        if name not in self.conditions:
            msg = f"the condition {name} is not declared under Conditions"
            raise Unresolvable(msg)
        return self._truth(self.conditions[name], _seen | {name})

    # --- the functions ------------------------------------------------------------------------

    def _call(self, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self._ref(argument)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::If":
            return self._if(argument)
        if name == "Fn::Join":
            return self._join(argument)
        if name == "Fn::Select":
            return self._select(argument)
        if name == "Fn::Split":
            return self._split(argument)
        if name == "Fn::FindInMap":
            return self._find_in_map(argument)
        if name in _CONDITION_FUNCTIONS:
            return self._truth({name: argument}, frozenset())
        if name == "Fn::GetAtt":
            target = (
                ".".join(str(part) for part in argument) if isinstance(argument, list) else argument
            )
            msg = f"!GetAtt {target} is only known once the stack is deployed"
            raise Unresolvable(msg)
        msg = f"{name} is only known once the stack is deployed"
        raise Unresolvable(msg)

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            msg = f"!Ref takes a name, not {name!r}"
            raise Unresolvable(msg)
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.undecided:
            msg = f"the parameter {name} {self.undecided[name]}"
            hint = f"Pass --parameter-overrides {name}=VALUE (or give it a Default)."
            raise Unresolvable(msg, hint=hint)
        if name.startswith("AWS::"):
            msg = f"the pseudo parameter {name} is only known once the stack is deployed"
            hint = f"Pass --parameter-overrides {name}=VALUE to build with a value of your choice."
            raise Unresolvable(msg, hint=hint)
        if name in self.resources:
            msg = f"!Ref {name} names a resource, only known once the stack is deployed"
            raise Unresolvable(msg)
        msg = f"!Ref {name} names no parameter or resource of the template"
        raise Unresolvable(msg)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            msg = f"!Sub takes a string (or [string, variables]), not {argument!r}"
            raise Unresolvable(msg)

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is written as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                found = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                msg = f"${{{name}}} in !Sub is an attribute only known once the stack is deployed"
                raise Unresolvable(msg)
            else:
                found = self._ref(name)
            if isinstance(found, list) or found is NO_VALUE:
                msg = f"${{{name}}} in !Sub is not a single string"
                raise Unresolvable(msg)
            return str(found)

        return _SUB_VARIABLE.sub(value, text)

    def _if(self, argument: Any) -> Any:
        if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
            msg = f"!If takes [condition, value if true, value if false], not {argument!r}"
            raise Unresolvable(msg)
        chosen = argument[1] if self.condition(argument[0]) else argument[2]
        return self.resolve(chosen)

    def _join(self, argument: Any) -> str:
        if not isinstance(argument, list) or len(argument) != 2:
            msg = f"!Join takes [delimiter, [values]], not {argument!r}"
            raise Unresolvable(msg)
        delimiter, items = argument[0], self.resolve(argument[1])
        if not isinstance(delimiter, str) or not isinstance(items, list):
            msg = f"!Join takes [delimiter, [values]], not {argument!r}"
            raise Unresolvable(msg)
        return delimiter.join(str(item) for item in items)

    def _select(self, argument: Any) -> Any:
        if not isinstance(argument, list) or len(argument) != 2:
            msg = f"!Select takes [index, [values]], not {argument!r}"
            raise Unresolvable(msg)
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        try:
            return items[int(index)]
        except (TypeError, ValueError, IndexError, KeyError):
            msg = f"!Select of item {index!r} of {items!r} has no value"
            raise Unresolvable(msg) from None

    def _split(self, argument: Any) -> list[str]:
        if not isinstance(argument, list) or len(argument) != 2:
            msg = f"!Split takes [delimiter, string], not {argument!r}"
            raise Unresolvable(msg)
        delimiter, text = argument[0], self.resolve(argument[1])
        if not isinstance(delimiter, str) or not delimiter or not isinstance(text, str):
            msg = f"!Split takes [delimiter, string], not {argument!r}"
            raise Unresolvable(msg)
        return text.split(delimiter)

    def _find_in_map(self, argument: Any) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            msg = f"!FindInMap takes [map, key, key], not {argument!r}"
            raise Unresolvable(msg)
        name, first, second = (self.resolve(part) for part in argument)
        try:
            return self.resolve(self.mappings[name][first][second])
        except (KeyError, TypeError):
            msg = f"!FindInMap [{name}, {first}, {second}] is not in the template's Mappings"
            raise Unresolvable(msg) from None

    def _truth(self, value: Any, seen: frozenset[str]) -> bool:
        """A condition function (or a condition's name, through Condition) as true or false."""
        if not is_intrinsic(value):
            msg = f"a condition must be a condition function, not {value!r}"
            raise Unresolvable(msg)
        ((name, argument),) = value.items()
        if name == "Condition":
            if not isinstance(argument, str):
                msg = f"Condition takes a condition's name, not {argument!r}"
                raise Unresolvable(msg)
            return self.condition(argument, seen)
        if name == "Fn::Equals":
            if not isinstance(argument, list) or len(argument) != 2:
                msg = f"!Equals takes [value, value], not {argument!r}"
                raise Unresolvable(msg)
            left, right = (self.resolve(part) for part in argument)
            return bool(_comparable(left) == _comparable(right))
        if name in ("Fn::And", "Fn::Or", "Fn::Not"):
            if not isinstance(argument, list) or not argument:
                msg = f"{name} takes a list of conditions, not {argument!r}"
                raise Unresolvable(msg)
            values = [self._truth(item, seen) for item in argument]
            if name == "Fn::Not":
                return not values[0]
            return all(values) if name == "Fn::And" else any(values)
        msg = f"{name} is not a condition function"
        raise Unresolvable(msg)


def _comparable(value: Any) -> Any:
    # CloudFormation compares strings: Default 1 and "1" are equal.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value
