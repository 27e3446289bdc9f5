"""``nativebuild sam build --shard K/N`` on real engines with real sdists from PyPI: two CI shards
of a template with two functions sharing moto's S3 compile disjoint sets that together cover
every sdist of the template (the one both functions need, once), the assembly that follows
(``sam build --cache-only``, an empty local cache) starts no container, and its archives are
those of a one-runner ``sam build``, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.moto_server import S3, moto_endpoint, s3

__all__ = ["moto_endpoint", "s3"]  # fixtures
pytestmark = [pytest.mark.docker, pytest.mark.network]

BUILD_IMAGE = "nativebuild-test/build-{runtime}:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-{runtime}:{arch}"
# Four sdists that must compile (C extensions; crcmod and wrapt 1.12.1 have no wheel at all);
# markupsafe is in both functions' requirements: one compile job for the whole template.
SDISTS = ("crcmod", "markupsafe", "simplejson", "wrapt")
TEMPLATE = """\
Globals:
  Function: {Runtime: python3.9, Handler: app.handler, Architectures: [x86_64]}
Resources:
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: orders/}
  ReportsFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: reports/}
"""
FILES = {
    "template.yaml": TEMPLATE,
    "orders/app.py": "import crcmod, markupsafe\n",
    "orders/requirements.txt": "crcmod==1.7\nmarkupsafe==2.1.5\nsix==1.16.0\n--no-binary markupsafe\n",
    "reports/app.py": "import markupsafe, simplejson, wrapt\n",
    "reports/requirements.txt": (
        "markupsafe==2.1.5\nsimplejson==3.17.2\nwrapt==1.12.1\n--no-binary markupsafe,simplejson\n"
    ),
}
ARCHIVES = (
    "OrdersFunction/OrdersFunction-python3.9-x86_64.zip",
    "ReportsFunction/ReportsFunction-python3.9-x86_64.zip",
)


def make_app(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def args(cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "nativebuild", "sam", "build", "--build-image", BUILD_IMAGE,
        "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--cache-dir", str(cache), "--json",
        *extra,
    ]  # fmt: skip


def run(argv: list[str], app: Path) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        argv, cwd=app, capture_output=True, text=True, check=False, timeout=1500,
        env={**os.environ, "SOURCE_DATE_EPOCH": ""},
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else {}, done.stderr


def test_two_shards_of_a_template_then_an_assembly_with_no_container_and_the_same_bytes(
    tmp_path: Path, s3: S3
) -> None:
    app = make_app(tmp_path / "app")

    def shard(k: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            args(tmp_path / f"runner-{k}", "--shard", f"{k}/2", "--cache", s3.url), cwd=app,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": ""},
        )  # fmt: skip

    runners = [shard(k) for k in (1, 2)]  # two CI runners at once, empty caches each
    compiled: dict[str, str] = {}
    for k, process in enumerate(runners, start=1):
        out, err = process.communicate(timeout=1500)
        assert process.returncode == 0, err[-4000:]
        result = json.loads(out)
        assert result["shard"] == f"{k}/2"
        assert result["resources"] == []
        mine = {w["name"] for w in result["wheels"]}
        assert {w["source"] for w in result["wheels"]} <= {"compiled"}
        (builder,) = result["builders"]
        assert sorted(builder["jobs"]) == sorted(mine), "each of its sdists compiled once"
        assert {job["name"] for job in result["left_to_other_shards"]} == set(SDISTS) - mine
        assert {job["shard"] for job in result["left_to_other_shards"]} <= {f"{3 - k}/2"}
        for name in mine:
            assert name not in compiled, f"{name} compiled by shards {compiled[name]} and {k}/2"
            compiled[name] = f"{k}/2"
    assert sorted(compiled) == sorted(SDISTS)
    assert not (app / ".aws-sam").exists(), "a shard writes no build directory"
    manifests = [key for key in s3.objects() if key.endswith("/manifest.json")]
    assert len(manifests) == len(SDISTS)

    code, assembled, err = run(args(tmp_path / "assembly", "--cache-only", "--cache", s3.url), app)
    assert code == 0, err[-4000:]
    assert assembled["containers_started"] == 0
    assert {w["source"] for w in assembled["wheels"] if w["name"] in SDISTS} == {"cache"}
    assert {r["status"] for r in assembled["resources"]} == {"built", "cached"}

    single = tmp_path / "single"
    code, alone, err = run(args(tmp_path / "one-runner", "--build-dir", str(single)), app)
    assert code == 0, err[-4000:]
    assert alone["containers_started"] > 0, "the one runner compiled it all itself"
    build_dir = app / ".aws-sam" / "build"
    for archive in ARCHIVES:
        assert (build_dir / archive).read_bytes() == (single / archive).read_bytes(), archive
