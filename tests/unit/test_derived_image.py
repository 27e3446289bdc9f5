"""The derived build image of build-packages and before-build: its tag and Dockerfile."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nativebuild.pipeline.derived_image import plan_derived

BASE: dict[str, Any] = {
    "base_id": "sha256:" + "1" * 64,
    "packages": ("libpq-dev", "libyaml-dev"),
    "commands": ("pip install cython",),
    "install_script": b"#!/bin/sh\n",
    "arch": "x86_64",
    "platform": "linux/amd64",
    "ca_bundle": True,
}


def test_same_inputs_same_tag_and_the_ca_bundle_does_not_count() -> None:
    first = plan_derived("example/build:x86_64", **BASE)
    assert first.tag == plan_derived("example/build:x86_64", **BASE).tag
    assert first.tag == plan_derived("example/build:x86_64", **{**BASE, "ca_bundle": False}).tag
    assert first.tag.startswith("nativebuild/derived:")
    assert first.tag.endswith("-x86_64")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_id", "sha256:" + "2" * 64),
        ("packages", ("libpq-dev",)),
        ("commands", ("pip install cython==3.0",)),
        ("install_script", b"#!/bin/sh\n# changed\n"),
    ],
)
def test_every_input_changes_the_tag(field: str, value: Any) -> None:
    assert (
        plan_derived("example/build:x86_64", **{**BASE, field: value}).tag
        != plan_derived("example/build:x86_64", **BASE).tag
    )


def test_dockerfile_installs_then_runs_commands_in_exec_form() -> None:
    hostile = "echo \"$(id)\"; touch /tmp/x && echo 'q'"
    plan = plan_derived("example/build:x86_64", **{**BASE, "commands": (hostile,)})
    lines = plan.dockerfile.splitlines()
    assert lines[0] == "FROM example/build:x86_64"
    runs = [json.loads(line.removeprefix("RUN ")) for line in lines if line.startswith("RUN ")]
    assert runs[0] == [
        "/bin/sh", "/tmp/nativebuild-derived/install-toolchain.sh", "packages", "libpq-dev",
        "libyaml-dev",
    ]  # fmt: skip
    # The command reaches one shell intact, whatever it holds; the CA bundle is trusted.
    assert runs[1][-3:] == ["/bin/sh", "-c", hostile]
    assert "PIP_CERT=/tmp/nativebuild-derived/ca-bundle.crt" in runs[1]
    assert runs[-1] == ["rm", "-rf", "/tmp/nativebuild-derived"]


def test_without_packages_there_is_no_install_step() -> None:
    plan = plan_derived("b", **{**BASE, "packages": (), "ca_bundle": False})
    assert "install-toolchain.sh packages" not in plan.dockerfile
    assert "packages" not in plan.dockerfile.split("RUN", 1)[1].split("\n", 1)[0]
    assert "PIP_CERT" not in plan.dockerfile
