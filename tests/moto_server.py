"""moto's standalone S3 server on 127.0.0.1, for tests that talk real HTTP through real boto3.

Import the fixtures into a test module (``from tests.moto_server import moto_endpoint, s3``).
The server is a separate process (``python -m moto.server``), never an in-process mock, so the
code under test cannot tell it from any other S3-compatible store.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import pytest

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free port; yield its endpoint URL; stop it."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start on {endpoint}")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str
    client: Any
    env: dict[str, str]  # what a nativebuild process needs to reach this bucket

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/team-cache"

    def objects(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)


def isolate_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_env: Mapping[str, str]) -> None:
    """Fake credentials only: never the developer's profile, config files or real endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in {**FAKE_CREDENTIALS, **tmp_path_env}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> S3:
    """A fresh bucket on the session's moto server, and an environment pointing at it."""
    isolate_aws(
        monkeypatch,
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_ENDPOINT_URL_S3": moto_endpoint,
        },
    )
    bucket = f"nativebuild-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    env = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    return S3(endpoint=moto_endpoint, bucket=bucket, client=client, env=env)


@pytest.fixture(scope="session")
def denied_endpoint() -> Iterator[str]:
    """A moto server that checks credentials (IAM authorization on from the first request):
    every request with our fake keys is refused with 403, as with revoked credentials."""
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as endpoint:
        yield endpoint


@pytest.fixture
def dead_endpoint() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class Identities:
    """A bucket on a server that checks credentials, and two identities for it."""

    endpoint: str
    url: str
    writer: dict[str, str]  # AWS_* variables of an identity that may read, write and delete
    reader: dict[str, str]  # ... of one that may only read (GetObject, ListBucket)


@pytest.fixture(scope="session")
def identities() -> Iterator[Identities]:
    """Set up with authorization off, then switch it on for every request that follows
    (moto's ``/moto-api/reset-auth``): nothing depends on how many requests the set-up makes.
    Before any test runs, each identity is checked to do exactly what its policy says."""
    with moto_server() as endpoint:
        config = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", **config}
        bucket = "nativebuild-iam"
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        iam = boto3.client("iam", **setup)
        env = {}
        for name, actions in (
            ("writer", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]),
            ("reader", ["s3:GetObject", "s3:ListBucket"]),
        ):
            iam.create_user(UserName=name)
            policy = {"Effect": "Allow", "Action": actions, "Resource": "*"}
            iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=_policy(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            env[name] = {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            }
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10):  # authorization on from here
            pass
        _check_permissions(bucket, config, writer=env["writer"], reader=env["reader"])
        yield Identities(
            endpoint=endpoint, url=f"s3://{bucket}/ci", writer=env["writer"], reader=env["reader"]
        )


def _check_permissions(
    bucket: str, config: Mapping[str, str], *, writer: Mapping[str, str], reader: Mapping[str, str]
) -> None:
    """The writer puts, reads and deletes; the reader reads what the writer wrote and is refused
    a put. Anything else means that the server does not enforce the policies as the tests
    assume, and every test using them would prove nothing."""
    as_writer, as_reader = (
        boto3.client(
            "s3",
            aws_access_key_id=identity["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=identity["AWS_SECRET_ACCESS_KEY"],
            **config,
        )
        for identity in (writer, reader)
    )
    probe = f"permission-check/{uuid.uuid4().hex}"
    as_writer.put_object(Bucket=bucket, Key=probe, Body=b"probe")
    assert as_reader.get_object(Bucket=bucket, Key=probe)["Body"].read() == b"probe"
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        as_reader.put_object(Bucket=bucket, Key=probe, Body=b"overwrite")
    assert refused.value.response["Error"]["Code"] in {"AccessDenied", "403"}
    assert as_writer.get_object(Bucket=bucket, Key=probe)["Body"].read() == b"probe"
    as_writer.delete_object(Bucket=bucket, Key=probe)


def _policy(statement: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
