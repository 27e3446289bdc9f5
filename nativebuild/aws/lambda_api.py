"""Carry out a publish plan against AWS: S3 uploads, layer versions, function code.

The only module that calls the Lambda API. Credentials, region and endpoint come from boto3's
standard chain (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_LAMBDA`` included), so a local
endpoint needs no flag. Order: every target is looked up and planned first (limits,
architectures and missing functions fail there, before any write); then S3 uploads, layers,
function code, and last the layers each function uses. Lambda applies an UpdateFunctionCode
whole or not at all, and we wait for it before going on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import boto3  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    WaiterError,
)

from nativebuild.aws.publish_plan import (
    LATEST,
    Intent,
    ManifestArchive,
    Outcome,
    PlannedAction,
    PublishOptions,
    PublishPlan,
    PublishResult,
    Remote,
    intents,
    merged_layers,
    plan_publish,
)
from nativebuild.errors import AwsSetupError, PublishError
from nativebuild.reporting import NullReporter, Reporter

_MB = 1024 * 1024
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
     "InvalidClientTokenId", "InvalidSignatureException", "ExpiredToken",
     "ExpiredTokenException", "SignatureDoesNotMatch", "403"}
)  # fmt: skip
_MISSING = frozenset({"ResourceNotFoundException", "404", "NoSuchKey", "NotFound"})
_TRANSFER = TransferConfig(multipart_threshold=16 * _MB, multipart_chunksize=16 * _MB)
_WAIT = {"Delay": 2, "MaxAttempts": 300}  # Lambda applies code within seconds to minutes


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _detail(message: str) -> str:
    """The message of an error body some endpoints send as XML, else ``message`` as is."""
    if not message.lstrip().startswith("<"):
        return message
    found = dict(re.findall(r"<(Code|Message)>([^<]*)</(?:Code|Message)>", message))
    return ": ".join(v for v in (found.get("Code"), found.get("Message")) if v)


def _failure(doing: str, err: Exception) -> PublishError:
    """A clear error for ``doing`` from a boto3/botocore exception; no traceback, no secrets."""
    if isinstance(err, NoCredentialsError):
        msg = f"Cannot {doing}: no AWS credentials found."
        hint = "Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        return AwsSetupError(msg, hint=hint)
    if isinstance(err, ClientError):
        code = _code(err)
        detail = _detail(str(err.response.get("Error", {}).get("Message", ""))) or code
        if code in _DENIED:
            msg = f"Cannot {doing}: access denied ({code}: {detail})."
            hint = (
                "The credentials need lambda:GetFunction, lambda:UpdateFunctionCode, "
                "lambda:UpdateFunctionConfiguration, lambda:ListLayerVersions, "
                "lambda:GetLayerVersion, lambda:PublishLayerVersion, and s3:GetObject and "
                "s3:PutObject on the --s3 bucket."
            )
            return PublishError(msg, hint=hint)
        msg = f"Cannot {doing}: {code}: {detail}."
        return PublishError(msg, hint="Nothing after this step was changed; fix it and re-run.")
    msg = f"Cannot {doing}: {err}."
    hint = "Check the network and the endpoint (AWS_ENDPOINT_URL), then re-run."
    return PublishError(msg, hint=hint)


def aws_session() -> Any:
    """A boto3 session on the standard chain, refusing early without region or credentials."""
    session = boto3.session.Session()
    if not session.region_name:
        msg = "No AWS region: Lambda functions and layers live in one region."
        hint = "Set AWS_REGION (or AWS_DEFAULT_REGION), or a region in the AWS profile."
        raise AwsSetupError(msg, hint=hint)
    if session.get_credentials() is None:
        msg = "No AWS credentials found: nothing can be published."
        hint = "Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        raise AwsSetupError(msg, hint=hint)
    return session


class Publisher:
    """The Lambda and S3 clients of one session, and the steps of a plan."""

    def __init__(self, session: Any, *, reporter: Reporter | None = None) -> None:
        config = Config(
            connect_timeout=5,
            read_timeout=300,  # an inline 50 MiB ZipFile takes a while to send
            retries={"total_max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self.lam = session.client("lambda", config=config)
            self.s3 = session.client("s3", config=config)
        except (BotoCoreError, NoRegionError) as err:
            msg = "create the AWS clients"
            raise _failure(msg, err) from err
        self.reporter = reporter or NullReporter()

    # -- what is there now ------------------------------------------------------------

    def remote(self, intent: Intent, bucket: str | None) -> Remote:
        try:
            if intent.kind == "s3":
                return self._s3_object(bucket or "", intent.name)
            if intent.kind == "layer":
                return self._latest_layer(intent.name)
            return self._function(intent.name)
        except ClientError as err:
            if _code(err) in _MISSING:
                return Remote(exists=False)
            msg = f"look up {intent.kind} {intent.name}"
            raise _failure(msg, err) from err
        except BotoCoreError as err:
            msg = f"look up {intent.kind} {intent.name}"
            raise _failure(msg, err) from err

    def _s3_object(self, bucket: str, key: str) -> Remote:
        self.s3.head_object(Bucket=bucket, Key=key)
        return Remote(exists=True, arn=f"arn:aws:s3:::{bucket}/{key}")

    def _latest_layer(self, name: str) -> Remote:
        # Newest first; the listing carries no CodeSha256, GetLayerVersion does.
        versions = self.lam.list_layer_versions(LayerName=name, MaxItems=50)["LayerVersions"]
        if not versions:
            return Remote(exists=False)
        latest = max(versions, key=lambda v: int(v["Version"]))
        got = self.lam.get_layer_version(LayerName=name, VersionNumber=int(latest["Version"]))
        return Remote(
            exists=True,
            code_sha256=got["Content"]["CodeSha256"],
            arn=got["LayerVersionArn"],
            version=str(got["Version"]),
        )

    def _function(self, name: str) -> Remote:
        config = self.lam.get_function(FunctionName=name)["Configuration"]
        return Remote(
            exists=True,
            code_sha256=config.get("CodeSha256"),
            arn=config.get("FunctionArn"),
            version=LATEST,
            architectures=tuple(config.get("Architectures") or ("x86_64",)),
            layers=tuple(layer["Arn"] for layer in config.get("Layers") or ()),
        )

    # -- writes -----------------------------------------------------------------------

    def upload(self, action: PlannedAction, bucket: str) -> Outcome:
        archive, key = action.intent.archive, action.intent.name
        self.reporter.step(f"Uploading {archive.file} to s3://{bucket}/{key}")
        extra = {"ContentType": "application/zip", "Metadata": {"sha256": archive.sha256}}
        try:
            self.s3.upload_file(str(archive.path), bucket, key, ExtraArgs=extra, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as err:
            msg = f"upload {archive.file} to s3://{bucket}/{key}"
            raise _failure(msg, err) from err
        except Exception as err:  # boto3's S3UploadFailedError wraps the ClientError
            msg = f"upload {archive.file} to s3://{bucket}/{key}"
            raise _failure(msg, err) from err
        return _outcome(action, f"arn:aws:s3:::{bucket}/{key}", None, "uploaded")

    def publish_layer(
        self, action: PlannedAction, bucket: str | None, options: PublishOptions
    ) -> Outcome:
        archive, name = action.intent.archive, action.intent.name
        self.reporter.step(f"Publishing {archive.file} as a new version of layer {name}")
        description = options.description or (
            f"{archive.name} {archive.runtime} {archive.architecture} sha256:{archive.sha256[:16]}"
        )
        kwargs: dict[str, Any] = {
            "LayerName": name,
            "Content": self._content(archive, action.s3_key, bucket),
            "Description": description[:256],
            "CompatibleRuntimes": list(archive.compatible_runtimes or (archive.runtime,)),
            "CompatibleArchitectures": list(
                archive.compatible_architectures or (archive.architecture,)
            ),
        }
        if options.license:
            kwargs["LicenseInfo"] = options.license
        try:
            got = self.lam.publish_layer_version(**kwargs)
        except (ClientError, BotoCoreError) as err:
            msg = f"publish layer {name}"
            raise _failure(msg, err) from err
        self._check_sha(archive, got.get("Content", {}).get("CodeSha256"), f"layer {name}")
        return _outcome(action, got["LayerVersionArn"], str(got["Version"]), action.reason)

    def update_function(self, action: PlannedAction, bucket: str | None) -> Outcome:
        archive, name = action.intent.archive, action.intent.name
        via = f"s3://{bucket}/{action.s3_key}" if action.s3_key else "inline"
        self.reporter.step(f"Updating the code of function {name} with {archive.file} ({via})")
        content = self._content(archive, action.s3_key, bucket)
        try:
            self._wait(name)  # an update still in progress would refuse ours
            self.lam.update_function_code(FunctionName=name, **content)
            config = self._wait(name)
        except (ClientError, BotoCoreError) as err:
            msg = f"update the code of function {name}"
            raise _failure(msg, err) from err
        self._check_sha(archive, config.get("CodeSha256"), f"function {name}")
        return _outcome(action, config.get("FunctionArn"), LATEST, action.reason)

    def attach(self, function: str, current: Sequence[str], arns: Sequence[str]) -> bool:
        """Make the function use ``arns`` (new versions replace old ones of the same layer);
        False when it already did."""
        wanted = merged_layers(current, arns)
        if wanted == tuple(current):
            return False
        self.reporter.step(f"Function {function} now uses {', '.join(arns)}")
        try:
            self._wait(function)
            self.lam.update_function_configuration(FunctionName=function, Layers=list(wanted))
            self._wait(function)
        except (ClientError, BotoCoreError) as err:
            msg = f"set the layers of function {function}"
            raise _failure(msg, err) from err
        return True

    def _content(self, archive: ManifestArchive, key: str | None, bucket: str | None) -> Any:
        if key and bucket:
            return {"S3Bucket": bucket, "S3Key": key}
        return {"ZipFile": archive.path.read_bytes()}

    def _wait(self, name: str) -> dict[str, Any]:
        try:
            self.lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=_WAIT)
        except WaiterError as err:
            last = getattr(err, "last_response", None) or {}
            config = last.get("Configuration", {})
            why = config.get("LastUpdateStatusReason") or str(err)
            msg = f"The update of function {name} did not succeed: {why}."
            hint = "Lambda keeps the previous code when an update fails; fix it and re-run."
            raise PublishError(msg, hint=hint) from err
        got: dict[str, Any] = self.lam.get_function(FunctionName=name)["Configuration"]
        return got

    def _check_sha(self, archive: ManifestArchive, got: str | None, what: str) -> None:
        if got and got != archive.code_sha256:
            self.reporter.warning(
                f"{what} reports CodeSha256 {got}, not the manifest's {archive.code_sha256}: "
                f"{archive.file} changed after the build?"
            )


def _outcome(action: PlannedAction, arn: str | None, version: str | None, reason: str) -> Outcome:
    return Outcome(
        archive=action.intent.archive.file, target=action.target, arn=arn, version=version,
        code_sha256=action.intent.archive.code_sha256, reason=reason, action=action.action,
    )  # fmt: skip


def plan(
    archives: Sequence[ManifestArchive], options: PublishOptions, publisher: Publisher
) -> PublishPlan:
    """Look every target up, then decide (raising before anything is written)."""
    found = intents(archives, options)
    bucket = options.s3.bucket if options.s3 else None
    remotes = {intent.target: publisher.remote(intent, bucket) for intent in found}
    return plan_publish(found, remotes, options)


def publish(
    archives: Sequence[ManifestArchive],
    options: PublishOptions,
    *,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    session: Any = None,
) -> PublishResult:
    """Publish ``archives`` as ``options`` say; with ``dry_run`` only read from AWS."""
    publisher = Publisher(session or aws_session(), reporter=reporter)
    planned = plan(archives, options, publisher)
    bucket = options.s3.bucket if options.s3 else None
    done: list[Outcome] = []
    skipped: list[Outcome] = []
    layer_arns: dict[str, Outcome] = {}  # layer target → the version functions should use
    for action in planned.actions:
        remote = action.remote
        if action.action == "skip":
            skipped.append(_outcome(action, remote.arn, remote.version, action.reason))
            if action.intent.kind == "layer":
                layer_arns[action.target] = skipped[-1]
            continue
        if dry_run:
            done.append(_outcome(action, None, None, action.reason))
            continue
        if action.intent.kind == "s3":
            done.append(publisher.upload(action, bucket or ""))
        elif action.intent.kind == "layer":
            done.append(publisher.publish_layer(action, bucket, options))
            layer_arns[action.target] = done[-1]
        else:
            done.append(publisher.update_function(action, bucket))
    for action in planned.actions:
        if action.intent.kind == "function" and action.attach:
            done += _attach(publisher, action, layer_arns, dry_run=dry_run)
    return PublishResult(published=tuple(done), skipped=tuple(skipped), dry_run=dry_run)


def _attach(
    publisher: Publisher,
    action: PlannedAction,
    layers: Mapping[str, Outcome],
    *,
    dry_run: bool,
) -> list[Outcome]:
    """Outcomes (one per layer) for pointing a function at its layers' current versions."""
    known = [layers[t] for t in action.attach if t in layers and layers[t].arn]
    arns = [o.arn for o in known if o.arn]
    if not arns and not dry_run:
        return []
    target = action.target
    if dry_run:
        pending = [t for t in action.attach if t not in layers or not layers[t].arn]
        wanted = merged_layers(action.remote.layers, arns)
        if not pending and wanted == action.remote.layers:
            return []
        names = ", ".join(action.attach)
        return [
            Outcome(archive=action.intent.archive.file, target=target, arn=None, version=None,
                    code_sha256=action.intent.archive.code_sha256, action="attach",
                    reason=f"would attach the current version of {names}")
        ]  # fmt: skip
    if not publisher.attach(action.intent.name, action.remote.layers, arns):
        return []
    return [
        Outcome(archive=o.archive, target=target, arn=o.arn, version=o.version,
                code_sha256=o.code_sha256, action="attach",
                reason=f"the function now uses {o.target} version {o.version}")
        for o in known
    ]  # fmt: skip
