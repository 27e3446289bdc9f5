"""Resolving requirements to exact files, with pip inside the build image.

The build image runs the target's own Python, so pip there evaluates markers and picks wheels
exactly as the runtime would. We only ask it *what* to install (``--dry-run --report``); the host
downloads and the cache keeps the answer, so a warm rebuild needs no container to know it.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from nativebuild.errors import CompileError, NativebuildError, ResolutionError
from nativebuild.pins import Pin, Resolution
from nativebuild.redact import strip_credentials
from nativebuild.targets import Target

IN_DIR = "/nativebuild/in"
OUT_DIR = "/nativebuild/out"
# Inside the container only: shared by the jobs of one container run, gone with it. No host
# directory is ever writable to a build but its output (a hostile build could plant files).
PIP_CACHE_DIR = "/tmp/nativebuild-pip-cache"
REPORT_NAME = "report.json"


def pip_environment() -> dict[str, str]:
    """What pip needs in any of our containers, whoever they run as."""
    return {
        "HOME": "/tmp",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_ROOT_USER_ACTION": "ignore",
        "PIP_CACHE_DIR": PIP_CACHE_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def resolve_command(python: str, *, has_constraints: bool) -> tuple[str, ...]:
    """pip in the build image: resolve, report, install nothing."""
    command = [
        python, "-m", "pip", "install",
        "--dry-run", "--ignore-installed", "--quiet",
        "--report", f"{OUT_DIR}/{REPORT_NAME}",
        "-r", f"{IN_DIR}/requirements.txt",
    ]  # fmt: skip
    if has_constraints:
        command += ["-c", f"{IN_DIR}/constraints.txt"]
    return tuple(command)


def _sha256_of(download_info: Mapping[str, Any]) -> str | None:
    archive = download_info.get("archive_info", {})
    hashes = archive.get("hashes") or {}
    if "sha256" in hashes:
        return str(hashes["sha256"])
    legacy = str(archive.get("hash", ""))
    if legacy.startswith("sha256="):
        return legacy.removeprefix("sha256=")
    return None


def parse_report(report: Mapping[str, Any]) -> Resolution:
    """Turn pip's installation report (format version 1) into pins."""
    pins = []
    for item in report.get("install", []):
        metadata = item["metadata"]
        name = canonicalize_name(metadata["name"])
        info = item["download_info"]
        if "dir_info" in info or "vcs_info" in info:
            msg = f"{name} comes from a local directory or a VCS URL, which is not supported yet."
            raise ResolutionError(msg, hint="Pin a released version from the package index.")
        url = strip_credentials(str(info["url"]))
        sha256 = _sha256_of(info)
        if sha256 is None:
            msg = f"pip reported no sha256 for {name} {metadata['version']} ({url})."
            raise ResolutionError(msg, hint="Use an index that publishes sha256 hashes (PEP 503).")
        filename = unquote(posixpath.basename(urlsplit(url).path))
        pins.append(
            Pin(
                name=name,
                version=str(metadata["version"]),
                filename=filename,
                url=url,
                sha256=sha256,
            )
        )
    return Resolution(pins=tuple(sorted(pins, key=lambda p: p.name)))


def check_pins(resolution: Resolution, target: Target) -> None:
    """Every chosen file must be a wheel the target loads, or an sdist we can compile."""
    for pin in resolution.pins:
        if pin.is_wheel:
            try:
                _, _, _, tags = parse_wheel_filename(pin.filename)
            except InvalidWheelFilename as err:
                msg = f"{pin.name}: {pin.filename!r} is not a valid wheel file name."
                raise ResolutionError(msg) from err
            if not target.accepts(tags):
                msg = (
                    f"{pin.name} {pin.version}: pip in the build image chose {pin.filename}, which "
                    f"{target.describe()} cannot load."
                )
                hint = (
                    "The build image's glibc is newer than the declared ceiling: pass --glibc with "
                    "the image's real glibc, or add `--no-binary "
                    f"{pin.name}` to the requirements to compile it."
                )
                raise ResolutionError(msg, hint=hint)
        else:
            try:
                parse_sdist_filename(pin.filename)
            except InvalidSdistFilename as err:
                msg = f"{pin.name}: {pin.filename!r} is neither a wheel nor an sdist."
                raise ResolutionError(msg) from err


_TLS_MARKERS = ("certificate_verify_failed", "certificate verify failed", "sslerror")
_FAILED_BUILD = re.compile(r"Failed to build '?([A-Za-z0-9][A-Za-z0-9._-]*)'?")


def resolution_error_from_log(log_tail: Sequence[str]) -> NativebuildError:
    """Explain why pip could not resolve, from the end of its output.

    pip builds an sdist's metadata to learn its dependencies; when that build fails, the
    package cannot be compiled in this image, which is a compile failure, not a resolution one.
    """
    text = "\n".join(log_tail)
    failed = _FAILED_BUILD.search(text)
    if failed is not None:
        msg = (
            f"pip could not prepare the sdist of {failed.group(1)} in the build image (it runs the "
            f"package's build to learn its dependencies):\n{text}"
        )
        hint = (
            "Its build needs something the image lacks (see the lines above): pin a version "
            "with a binary wheel, or use a build image that has it (--build-image)."
        )
        return CompileError(msg, hint=hint)
    lowered = text.lower()
    # A TLS failure also ends in "No matching distribution" (every index page failed): test it
    # first, on pip's own words, so a package named like "pyopenssl" is not taken for one.
    if any(marker in lowered for marker in _TLS_MARKERS):
        hint = "The container could not verify the index's TLS certificate: set PIP_CERT to your CA bundle."
    elif "no matching distribution found" in lowered or "could not find a version" in lowered:
        hint = "Check the package name and version on the index, and any environment markers."
    elif "resolutionimpossible" in lowered or "conflict" in lowered:
        hint = "Two requirements need incompatible versions; relax one of the pins."
    elif "hashes" in lowered and "do not match" in lowered:
        hint = "A downloaded file did not match its --hash; check the hashes in the requirements."
    elif "certificate" in lowered or "ssl" in lowered:
        hint = "The container could not verify the index's TLS certificate: set PIP_CERT to your CA bundle."
    else:
        hint = "Run again with -v to see pip's full output."
    msg = f"pip could not resolve the requirements in the build image:\n{text}"
    return ResolutionError(msg, hint=hint)


def read_report(path: Path) -> Resolution:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        msg = f"pip ran but its report {path.name} is missing or unreadable."
        raise ResolutionError(msg, hint="Is pip in the build image at least 23.0?") from err
    return parse_report(data)
