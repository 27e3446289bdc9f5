"""Every command's --help renders (typer's rich help against the installed click: typer
0.13-0.15 crash there with click 8.2+, which the lowest tier would show)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nativebuild.cli.typer_app import app

COMMANDS = [
    ([], "build"),
    (["build"], "--runtime"),
    (["plan"], "--runtime"),
    (["doctor"], "--json"),
    (["verify"], "--runtime"),
    (["publish"], "--manifest"),
    (["cache"], "prune"),
    (["cache", "prune"], "--max-size"),
    (["images"], "pin"),
    (["sam", "build"], "--template"),
]


@pytest.mark.parametrize(
    ("command", "named"), COMMANDS, ids=[" ".join(c) or "top" for c, _ in COMMANDS]
)
def test_help_renders(command: list[str], named: str) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert named in result.output
