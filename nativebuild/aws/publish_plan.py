"""What ``nativebuild publish`` would do: pure decisions from a manifest, options and AWS state.

Reading the manifest is the only I/O here. :mod:`nativebuild.aws.lambda_api` asks AWS what is
there now (:class:`Remote`), calls :func:`plan_publish`, and carries the plan out. Every check
that can fail (limits, architectures, names) runs while planning, before anything is written,
so a refused publish leaves AWS as it was.

Targets are named by kind: ``layer:NAME``, ``function:NAME`` and ``s3://bucket/key``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from nativebuild.archive.budget import DIRECT_UPLOAD_LIMIT, UNZIPPED_LIMIT
from nativebuild.archive.manifest import SCHEMA
from nativebuild.errors import (
    ArchitectureMismatchError,
    ArchiveTooLargeError,
    ConfigError,
    PublishError,
)

Action = Literal["publish", "update", "upload", "skip"]
ARCHITECTURES = ("x86_64", "arm64")
LATEST = "$LATEST"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_TOO_BIG_HINT = (
    "Pass --s3 s3://bucket/prefix (a bucket in the function's region): larger archives are "
    "deployed from S3."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ManifestArchive:
    """One archive of ``manifest.json``, its path made absolute."""

    name: str
    kind: str  # function | layer
    path: Path
    runtime: str
    architecture: str
    sha256: str
    code_sha256: str
    size: int
    unzipped_size: int
    layers: tuple[str, ...] = ()  # file names of this build's layers the function uses
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    manifest_digest: str | None = None  # an image's OCI manifest: what a registry names it by

    @property
    def file(self) -> str:
        return self.path.name


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What publishing did (or would do, or skipped) for one target."""

    archive: str  # the archive's file name
    target: str
    arn: str | None  # for a pushed image: REGISTRY/REPOSITORY@sha256:..., its ImageUri
    version: str | None
    code_sha256: str
    reason: str
    action: str  # publish | update | upload | attach | push | skip

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": self.archive,
            "target": self.target,
            "arn": self.arn,
            "version": self.version,
            "code_sha256": self.code_sha256,
            "reason": self.reason,
            "action": self.action,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PublishResult:
    published: tuple[Outcome, ...]  # with dry_run: what would be published
    skipped: tuple[Outcome, ...]
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "published": [o.to_json() for o in self.published],
            "skipped": [o.to_json() for o in self.skipped],
            "dry_run": self.dry_run,
        }

    def __add__(self, other: PublishResult) -> PublishResult:
        return PublishResult(
            published=self.published + other.published,
            skipped=self.skipped + other.skipped,
            dry_run=self.dry_run or other.dry_run,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class S3Prefix:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket's root

    @classmethod
    def parse(cls, url: str) -> S3Prefix:
        parts = urlsplit(url.strip())
        if parts.scheme != "s3" or not _BUCKET_RE.fullmatch(parts.netloc) or parts.query:
            msg = f"Invalid --s3 {url!r}: expected s3://bucket or s3://bucket/prefix."
            raise ConfigError(msg)
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"))

    def key(self, archive: ManifestArchive) -> str:
        # By content: the same bytes get the same key, so they are uploaded once.
        name = f"{archive.sha256}/{archive.file}"
        return f"{self.prefix}/{name}" if self.prefix else name


@dataclasses.dataclass(frozen=True, kw_only=True)
class PublishOptions:
    layer_name: str | None = None  # may hold {arch} and {runtime}
    functions: tuple[str, ...] = ()  # NAME (may hold {arch}, {runtime}) or ARCH=NAME
    s3: S3Prefix | None = None
    description: str = ""
    license: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Intent:
    """An archive and where it goes, before asking AWS what is there."""

    archive: ManifestArchive
    kind: Literal["layer", "function", "s3"]
    name: str  # layer name, function name, or S3 key

    @property
    def target(self) -> str:
        return self.name if self.kind == "s3" else f"{self.kind}:{self.name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Remote:
    """What AWS has now for one target; ``exists`` False when there is nothing yet."""

    exists: bool
    code_sha256: str | None = None
    arn: str | None = None
    version: str | None = None
    architectures: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()  # a function's layer version ARNs, in order


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlannedAction:
    intent: Intent
    action: Action
    reason: str
    remote: Remote
    s3_key: str | None = None  # publish/update through this object of options.s3
    attach: tuple[str, ...] = ()  # layer targets whose new version the function should use

    @property
    def target(self) -> str:
        return self.intent.target


@dataclasses.dataclass(frozen=True, kw_only=True)
class PublishPlan:
    actions: tuple[PlannedAction, ...]
    s3: S3Prefix | None = None


def load_manifest(path: Path) -> tuple[ManifestArchive, ...]:
    """The archives of ``path``; each archive file must be there, with the size recorded."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        msg = f"No manifest at {path}."
        hint = "Run `nativebuild build` first, or pass --manifest DIST/manifest.json."
        raise ConfigError(msg, hint=hint) from err
    except (OSError, ValueError) as err:
        msg = f"Cannot read the manifest {path}: {err}."
        raise ConfigError(msg, hint="Build again to rewrite it.") from err
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        msg = f"{path} is not a nativebuild manifest (expected schema {SCHEMA!r})."
        raise ConfigError(msg, hint="Build again with this nativebuild version.")
    try:
        archives = tuple(_archive(item, path.parent) for item in doc["archives"])
    except (KeyError, TypeError, ValueError) as err:
        msg = f"The manifest {path} is malformed: {err!r}."
        raise ConfigError(msg, hint="Build again to rewrite it.") from err
    for archive in archives:
        if not archive.path.is_file() or archive.path.stat().st_size != archive.size:
            msg = f"{archive.path} is missing or not the file the manifest describes."
            raise ConfigError(msg, hint="Build again: the manifest and archives go together.")
    return archives


def _archive(item: Mapping[str, Any], base: Path) -> ManifestArchive:
    layer = item.get("layer") or {}
    return ManifestArchive(
        name=str(item["name"]),
        kind=str(item["kind"]),
        path=(base / str(item["file"])).resolve(),
        runtime=str(item["runtime"]),
        architecture=str(item["architecture"]),
        sha256=str(item["sha256"]),
        code_sha256=str(item["code_sha256"]),
        size=int(item["size"]),
        unzipped_size=int(item.get("unzipped_size") or 0),
        layers=tuple(str(x) for x in item.get("layers") or ()),
        compatible_runtimes=tuple(str(x) for x in layer.get("compatible_runtimes") or ()),
        compatible_architectures=tuple(str(x) for x in layer.get("compatible_architectures") or ()),
        manifest_digest=(item.get("image") or {}).get("manifest_digest"),
    )


def _render(template: str, archive: ManifestArchive) -> str:
    return template.replace("{arch}", archive.architecture).replace("{runtime}", archive.runtime)


def _function_names(
    specs: Sequence[str], archives: Sequence[ManifestArchive]
) -> list[tuple[ManifestArchive, str]]:
    """Each function archive with the function it updates. ``ARCH=NAME`` picks by
    architecture; a plain ``NAME`` applies to every function archive ({arch}/{runtime}
    expanded)."""
    pairs: list[tuple[ManifestArchive, str]] = []
    for spec in specs:
        arch, sep, name = spec.partition("=")
        if not sep:
            arch, name = "", spec
        if sep and arch not in ARCHITECTURES:
            msg = f"Invalid --function {spec!r}: expected NAME or ARCH=NAME (x86_64 or arm64)."
            raise ConfigError(msg)
        chosen = [a for a in archives if not arch or a.architecture == arch]
        if not chosen:
            msg = f"--function {spec!r}: the manifest has no {arch or 'function'} archive."
            raise ConfigError(msg, hint="Build for that architecture, or drop the flag.")
        pairs.extend((a, _render(name, a)) for a in chosen)
    return pairs


def _unique_targets(intents: Sequence[Intent], flag: str) -> None:
    seen: dict[str, ManifestArchive] = {}
    for intent in intents:
        first = seen.setdefault(intent.target, intent.archive)
        if first is not intent.archive and first.sha256 != intent.archive.sha256:
            msg = (
                f"{first.file} and {intent.archive.file} would both go to {intent.target} "
                "(each publish would replace the other's)."
            )
            raise ConfigError(msg, hint=f"Put {{arch}} (and {{runtime}}) in {flag}.")


def intents(archives: Sequence[ManifestArchive], options: PublishOptions) -> tuple[Intent, ...]:
    """Where each archive goes: S3 uploads first, then layers, then functions."""
    found: list[Intent] = []
    if options.s3 is not None:
        s3 = options.s3
        # Lambda takes images from a registry only (publish --image), never from S3.
        found += [
            Intent(archive=a, kind="s3", name=s3.key(a)) for a in archives if a.kind != "image"
        ]
    layers = [a for a in archives if a.kind == "layer"]
    if options.layer_name:
        if not layers:
            msg = "--layer-name is given, but the manifest has no layer archive."
            raise ConfigError(msg, hint="Build with --kind layer or --kind split.")
        named = [
            Intent(archive=a, kind="layer", name=_render(options.layer_name, a)) for a in layers
        ]
        _unique_targets(named, "--layer-name")
        found += _dedupe(named)
    functions = [a for a in archives if a.kind == "function"]
    if options.functions:
        if not functions:
            msg = "--function is given, but the manifest has no function archive."
            raise ConfigError(msg, hint="Build with --kind function or --kind split.")
        pairs = _function_names(options.functions, functions)
        named = [Intent(archive=a, kind="function", name=n) for a, n in pairs]
        _unique_targets(named, "--function")
        found += _dedupe(named)
    if not found:
        msg = "Nothing to publish: pass --layer-name, --function, --s3 or --image."
        raise ConfigError(msg)
    return tuple(found)


def _dedupe(items: Sequence[Intent]) -> list[Intent]:
    return list({item.target: item for item in reversed(items)}.values())[::-1]


def _check_size(intent: Intent, s3: S3Prefix | None) -> str | None:
    """The S3 key to publish from, or None for inline; raises when it cannot go at all."""
    archive = intent.archive
    if archive.unzipped_size > UNZIPPED_LIMIT:
        msg = (
            f"{archive.file} is {archive.unzipped_size:,} bytes unzipped: over Lambda's "
            f"{UNZIPPED_LIMIT:,}-byte limit, so {intent.target} would refuse it."
        )
        hint = "Make it smaller (--slim, --exclude) or split it into a function and layers."
        raise ArchiveTooLargeError(msg, hint=hint)
    if archive.size <= DIRECT_UPLOAD_LIMIT:
        return None
    if s3 is None:
        msg = (
            f"{archive.file} is {archive.size:,} bytes zipped: over the {DIRECT_UPLOAD_LIMIT:,}"
            f"-byte direct-upload limit of {intent.target}."
        )
        raise ArchiveTooLargeError(msg, hint=_TOO_BIG_HINT)
    return s3.key(archive)


def decide(intent: Intent, remote: Remote, options: PublishOptions) -> PlannedAction:
    """What to do for one target, given what AWS has now."""
    archive = intent.archive
    ours = archive.code_sha256
    if intent.kind == "s3":
        if remote.exists:
            return PlannedAction(
                intent=intent, action="skip", remote=remote,
                reason="already in S3: the key is the archive's sha256",
            )  # fmt: skip
        return PlannedAction(intent=intent, action="upload", remote=remote, reason="not in S3")
    key = _check_size(intent, options.s3)
    if intent.kind == "layer":
        if remote.exists and remote.code_sha256 == ours:
            reason = f"the latest version ({remote.version}) has the same CodeSha256"
            return PlannedAction(intent=intent, action="skip", remote=remote, reason=reason)
        reason = "changed since the latest version" if remote.exists else "new layer"
        return PlannedAction(
            intent=intent, action="publish", remote=remote, reason=reason, s3_key=key
        )
    if not remote.exists:
        msg = f"Lambda function {intent.name!r} does not exist (or is in another region)."
        hint = "Create it first (nativebuild updates code, it does not create functions)."
        raise PublishError(msg, hint=hint)
    if remote.architectures and archive.architecture not in remote.architectures:
        msg = (
            f"{archive.file} is built for {archive.architecture}, but function {intent.name!r} "
            f"runs on {', '.join(remote.architectures)}."
        )
        hint = "Pass --function ARCH=NAME to send each architecture's archive to its function."
        raise ArchitectureMismatchError(msg, hint=hint)
    if remote.code_sha256 == ours:
        reason = "the function's code has the same CodeSha256"
        return PlannedAction(intent=intent, action="skip", remote=remote, reason=reason)
    return PlannedAction(
        intent=intent, action="update", remote=remote, reason="the code differs", s3_key=key
    )


def plan_publish(
    found: Sequence[Intent], remotes: Mapping[str, Remote], options: PublishOptions
) -> PublishPlan:
    """Decide every target (``remotes`` by target); functions learn which published layers
    of this build they use, from the manifest's ``layers``."""
    actions = [decide(i, remotes.get(i.target, Remote(exists=False)), options) for i in found]
    layer_targets = {a.intent.archive.file: a.target for a in actions if a.intent.kind == "layer"}
    planned = [
        dataclasses.replace(
            action,
            attach=tuple(
                layer_targets[f] for f in action.intent.archive.layers if f in layer_targets
            ),
        )
        if action.intent.kind == "function"
        else action
        for action in actions
    ]
    return PublishPlan(actions=tuple(planned), s3=options.s3)


def layer_arn_base(version_arn: str) -> str:
    """``arn:...:layer:NAME:3`` → ``arn:...:layer:NAME``."""
    return version_arn.rsplit(":", 1)[0]


def merged_layers(current: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    """The function's layers with each of ``new`` replacing an older version of the same
    layer in place, or appended; other layers are kept in their order."""
    result = list(current)
    for arn in new:
        base = layer_arn_base(arn)
        places = [i for i, old in enumerate(result) if layer_arn_base(old) == base]
        if places:
            result[places[0]] = arn
        else:
            result.append(arn)
    return tuple(result)
