"""``nativebuild publish`` against moto's standalone server (Lambda, S3, IAM) on 127.0.0.1.

Real HTTP through real boto3; the endpoint reaches nativebuild only through AWS_ENDPOINT_URL,
as a user's local endpoint would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import random
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.cli.common import publish_built
from nativebuild.errors import ConfigError
from nativebuild.reporting import NullReporter
from tests.moto_server import denied_endpoint, isolate_aws, moto_endpoint

__all__ = ["denied_endpoint", "moto_endpoint"]  # fixtures, used by name

ROLE = "arn:aws:iam::123456789012:role/nativebuild-test"
_MB = 1024 * 1024


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    isolate_aws(
        monkeypatch,
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    config = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    iam = boto3.client("iam", **config)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName="nativebuild-test", AssumeRolePolicyDocument=_trust())
    return {"lambda": boto3.client("lambda", **config), "s3": boto3.client("s3", **config)}


def _trust() -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{**statement, "Action": "sts:AssumeRole"}]}
    )


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in sorted(members.items()):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def write_manifest(dist: Path, entries: list[dict[str, Any]]) -> Path:
    """Archives and ``manifest.json`` as ``nativebuild build`` writes them (schema 1)."""
    dist.mkdir(parents=True, exist_ok=True)
    docs = []
    for entry in entries:
        data: bytes = entry["data"]
        kind, arch = entry.get("kind", "function"), entry.get("arch", "x86_64")
        name = entry.get("name", "deps" if kind == "layer" else "orders")
        file = f"{name}-python3.12-{arch}.zip"
        (dist / file).write_bytes(data)
        digest = hashlib.sha256(data).digest()
        docs.append({
            "name": name, "kind": kind, "file": file, "runtime": "python3.12",
            "architecture": arch, "sha256": digest.hex(),
            "code_sha256": base64.b64encode(digest).decode(), "size": len(data),
            "unzipped_size": len(data), "files": 1, "direct_upload": len(data) <= 52_428_800,
            "mount": "/opt" if kind == "layer" else "/var/task",
            "layers": entry.get("layers", []),
            "layer": {"layout": "python", "compatible_runtimes": ["python3.12"],
                      "compatible_architectures": [arch]} if kind == "layer" else None,
        })  # fmt: skip
    path = dist / "manifest.json"
    path.write_text(json.dumps({"schema": "nativebuild-manifest/1", "archives": docs}))
    return path


def publish(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = CliRunner().invoke(cli.app, ["publish", *args, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    doc = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, doc, result.stderr


def create_function(aws: dict[str, Any], arch: str = "x86_64") -> str:
    name = f"fn-{uuid.uuid4().hex[:10]}"
    aws["lambda"].create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": zip_bytes({"app.py": b"def handler(e, c): return 0\n"})},
        Architectures=[arch],
    )  # fmt: skip
    return name


def code_sha(aws: dict[str, Any], function: str) -> str:
    return str(aws["lambda"].get_function(FunctionName=function)["Configuration"]["CodeSha256"])


def test_layer_same_bytes_no_new_version_changed_bytes_new_version(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    layer = f"deps-{uuid.uuid4().hex[:8]}"
    first = {"kind": "layer", "data": zip_bytes({"python/six.py": b"# six 1.16\n"})}
    manifest = write_manifest(tmp_path / "dist", [first])
    code, doc, _ = publish("--manifest", str(manifest), "--layer-name", layer)
    assert code == 0
    assert doc is not None
    (published,) = doc["published"]
    assert (published["target"], published["version"]) == (f"layer:{layer}", "1")
    got = aws["lambda"].get_layer_version(LayerName=layer, VersionNumber=1)
    assert got["CompatibleRuntimes"] == ["python3.12"]
    assert got["CompatibleArchitectures"] == ["x86_64"]

    code, doc, _ = publish("--manifest", str(manifest), "--layer-name", layer)
    assert (code, doc is not None and doc["published"]) == (0, [])
    assert doc is not None
    (skipped,) = doc["skipped"]
    assert skipped["arn"] == published["arn"]
    assert "same CodeSha256" in skipped["reason"]
    assert len(aws["lambda"].list_layer_versions(LayerName=layer)["LayerVersions"]) == 1

    changed = {"kind": "layer", "data": zip_bytes({"python/six.py": b"# six 1.17\n"})}
    manifest = write_manifest(tmp_path / "dist", [changed])
    code, doc, _ = publish("--manifest", str(manifest), "--layer-name", layer)
    assert code == 0
    assert doc is not None
    assert [p["version"] for p in doc["published"]] == ["2"]


def test_function_updated_once_then_skipped(aws: dict[str, Any], tmp_path: Path) -> None:
    function = create_function(aws)
    data = zip_bytes({"app.py": b"def handler(e, c): return 1\n"})
    manifest = write_manifest(tmp_path / "dist", [{"data": data}])
    code, doc, _ = publish("--manifest", str(manifest), "--function", function)
    assert code == 0
    assert doc is not None
    (updated,) = doc["published"]
    assert updated["target"] == f"function:{function}"
    assert code_sha(aws, function) == updated["code_sha256"]
    assert updated["code_sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    code, doc, _ = publish("--manifest", str(manifest), "--function", function)
    assert code == 0
    assert doc is not None
    assert doc["published"] == []
    assert [s["target"] for s in doc["skipped"]] == [f"function:{function}"]


def test_dry_run_writes_nothing(aws: dict[str, Any], tmp_path: Path) -> None:
    layer = f"deps-{uuid.uuid4().hex[:8]}"
    manifest = write_manifest(
        tmp_path / "dist", [{"kind": "layer", "data": zip_bytes({"a": b"1"})}]
    )
    code, doc, _ = publish("--manifest", str(manifest), "--layer-name", layer, "--dry-run")
    assert code == 0
    assert doc is not None
    assert doc["dry_run"] is True
    assert (doc["published"][0]["action"], doc["published"][0]["reason"]) == (
        "publish",
        "new layer",
    )
    assert aws["lambda"].list_layer_versions(LayerName=layer)["LayerVersions"] == []


def test_split_build_attaches_the_published_layer(aws: dict[str, Any], tmp_path: Path) -> None:
    function, layer = create_function(aws), f"deps-{uuid.uuid4().hex[:8]}"
    layer_entry = {"kind": "layer", "data": zip_bytes({"python/x.py": b"x = 1\n"})}
    fn_entry = {"data": zip_bytes({"app.py": b"y = 2\n"}), "layers": ["deps-python3.12-x86_64.zip"]}
    manifest = write_manifest(tmp_path / "dist", [layer_entry, fn_entry])
    args = ("--manifest", str(manifest), "--layer-name", layer, "--function", function)
    code, doc, _ = publish(*args)
    assert code == 0
    assert doc is not None
    layer_arn = doc["published"][0]["arn"]
    assert [p["target"] for p in doc["published"]] == [
        f"layer:{layer}", f"function:{function}", f"function:{function}",
    ]  # fmt: skip
    config = aws["lambda"].get_function(FunctionName=function)["Configuration"]
    assert [item["Arn"] for item in config["Layers"]] == [layer_arn]
    code, doc, _ = publish(*args)
    assert code == 0
    assert doc is not None
    assert doc["published"] == []  # nothing changed: no new version, no re-attach


def test_60_mb_archive_goes_through_s3_once(aws: dict[str, Any], tmp_path: Path) -> None:
    function = create_function(aws)
    bucket = f"nb-{uuid.uuid4().hex[:10]}"
    aws["s3"].create_bucket(Bucket=bucket)
    noise = random.Random(20261127).randbytes(60 * _MB)  # noqa: S311 (incompressible)
    data = zip_bytes({"app.py": b"z = 3\n", "blob.bin": noise})
    manifest = write_manifest(tmp_path / "dist", [{"data": data}])
    args = ("--manifest", str(manifest), "--function", function, "--s3", f"s3://{bucket}/lambda")
    code, doc, err = publish(*args)
    assert code == 0, err
    assert doc is not None
    upload, update = doc["published"]
    key = f"lambda/{hashlib.sha256(data).hexdigest()}/orders-python3.12-x86_64.zip"
    assert upload["target"] == key
    head = aws["s3"].head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"]  # a multipart upload
    assert update["target"] == f"function:{function}"
    assert code_sha(aws, function) == update["code_sha256"]

    code, doc, _ = publish(*args)
    assert code == 0
    assert doc is not None
    assert doc["published"] == []
    assert sorted(s["target"] for s in doc["skipped"]) == sorted([key, f"function:{function}"])


def test_over_the_direct_upload_limit_without_s3_is_refused(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    function = create_function(aws)
    before = code_sha(aws, function)
    data = zip_bytes({"blob.bin": random.Random(1).randbytes(51 * _MB)})  # noqa: S311
    manifest = write_manifest(tmp_path / "dist", [{"data": data}])
    code, _, err = publish("--manifest", str(manifest), "--function", function)
    assert code == 18
    assert "direct-upload limit" in err
    assert "--s3" in err
    assert code_sha(aws, function) == before


def test_function_architecture_mismatch_is_a_clear_error(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    function = create_function(aws, arch="arm64")
    before = code_sha(aws, function)
    manifest = write_manifest(tmp_path / "dist", [{"data": zip_bytes({"app.py": b"a\n"})}])
    code, _, err = publish("--manifest", str(manifest), "--function", function)
    assert code == 19
    assert "built for x86_64" in err
    assert "runs on arm64" in err
    assert "Traceback" not in err
    assert code_sha(aws, function) == before


def test_missing_function_is_a_clear_error_and_publishes_nothing(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    layer = f"deps-{uuid.uuid4().hex[:8]}"
    entries = [{"kind": "layer", "data": zip_bytes({"l": b"1"})}, {"data": zip_bytes({"f": b"2"})}]
    manifest = write_manifest(tmp_path / "dist", entries)
    args = ("--manifest", str(manifest), "--layer-name", layer, "--function", "no-such-fn")
    code, _, err = publish(*args)
    assert code == 16
    assert "'no-such-fn' does not exist" in err
    assert aws["lambda"].list_layer_versions(LayerName=layer)["LayerVersions"] == []


def test_no_region_is_a_clear_error(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    manifest = write_manifest(tmp_path / "dist", [{"data": zip_bytes({"f": b"2"})}])
    code, _, err = publish("--manifest", str(manifest), "--function", "anything")
    assert code == 17
    assert "No AWS region" in err
    assert "AWS_REGION" in err


def test_no_credentials_is_a_clear_error(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    manifest = write_manifest(tmp_path / "dist", [{"data": zip_bytes({"f": b"2"})}])
    code, _, err = publish("--manifest", str(manifest), "--function", "anything")
    assert code == 17
    assert "No AWS credentials" in err


def test_access_denied_is_a_clear_error_without_secrets(
    aws: dict[str, Any], denied_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", denied_endpoint)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-never-shown")
    manifest = write_manifest(tmp_path / "dist", [{"data": zip_bytes({"f": b"2"})}])
    code, _, err = publish("--manifest", str(manifest), "--function", "orders")
    assert code == 16
    assert "access denied" in err
    assert "lambda:UpdateFunctionCode" in err
    assert "s3cr3t" not in err
    assert "Traceback" not in err


def test_build_publish_step_publishes_the_manifest_just_written(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    layer = f"deps-{uuid.uuid4().hex[:8]}"
    manifest = write_manifest(
        tmp_path / "dist", [{"kind": "layer", "data": zip_bytes({"a": b"1"})}]
    )
    console = Console(file=io.StringIO(), width=300)
    publish_built(manifest, {"layer_name": layer}, reporter=NullReporter(), console=console)
    assert len(aws["lambda"].list_layer_versions(LayerName=layer)["LayerVersions"]) == 1
    assert f"layer:{layer}:1" in console.file.getvalue()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="no manifest"):
        publish_built(None, {"layer_name": layer}, reporter=NullReporter(), console=console)
