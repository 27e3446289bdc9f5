"""An S3 store on a real boto3 client whose answers a test gives (botocore's Stubber): for the
answers moto's server never gives, e.g. 403 for a missing key, which real S3 returns when the
caller may not list the bucket."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from nativebuild.cache.s3 import RemoteLocation, S3Store


def stubbed_store() -> tuple[S3Store, Stubber]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",  # noqa: S106
    )
    return S3Store(RemoteLocation.parse("s3://bkt/p"), client=client), Stubber(client)
