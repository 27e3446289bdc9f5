"""What ``sam build`` is asked: which template, and its parameters. Read before anything heavy
is imported (an unchanged build is answered from its record without parsing the template)."""

from __future__ import annotations

import shlex
from pathlib import Path

from nativebuild.errors import ConfigError, TemplateError

# What `sam build` looks for in the current directory, in this order.
TEMPLATE_NAMES = ("template.yaml", "template.yml")


def find_template(directory: Path) -> Path:
    """``template.yaml`` (or ``template.yml``) in ``directory``, as ``sam build`` finds it."""
    for name in TEMPLATE_NAMES:
        if (directory / name).is_file():
            return directory / name
    msg = f"No SAM template in {directory}: neither {' nor '.join(TEMPLATE_NAMES)} exists."
    raise TemplateError(msg, hint="Run in the folder of your template, or pass -t PATH.")


def parse_parameter_overrides(values: list[str]) -> dict[str, str]:
    """``--parameter-overrides`` as SAM takes it: ``Key=Value`` pairs, several per value
    (space-separated, quotes allowed) or one per flag, or CloudFormation's
    ``ParameterKey=Key,ParameterValue=Value``."""
    found: dict[str, str] = {}
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError as err:
            msg = f"--parameter-overrides {value!r}: {err}."
            raise ConfigError(msg, hint="Close the quotes.") from err
        for word in words:
            if word.startswith("ParameterKey="):
                key_part, sep, value_part = word.partition(",ParameterValue=")
                key, text = key_part.removeprefix("ParameterKey="), value_part
            else:
                key, sep, text = word.partition("=")
            if not sep or not key:
                msg = f"--parameter-overrides {word!r} is not Key=Value."
                raise ConfigError(
                    msg, hint="For example --parameter-overrides Stage=prod Runtime=python3.12"
                )
            found[key] = text
    return found
