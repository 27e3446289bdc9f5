"""One requirement: PEP 508 text, a URL, or a local project directory, with its hashes.

Checked here as pip would read it, so a bad line fails at once with its ``file:line``; the text
written back for pip (``RequirementLine.specifier``) is the same with every packaging release.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from nativebuild.errors import RequirementSyntaxError
from nativebuild.inputs.local_project import read_local_project
from nativebuild.redact import redact

COMMENT_RE = re.compile(r"(^|\s+)#.*$")  # pip's: '#' at line start or after whitespace
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HASH_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}  # pip's STRONG_HASHES
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz")

FORM_HINT = (
    "Write one requirement per line as NAME[EXTRAS] SPECIFIERS[; MARKER] or NAME @ URL, "
    'for example: requests[socks]>=2.31; python_version < "3.12"'
)
_LOCAL_PATH_HINT = (
    "Local path dependencies are not supported yet (a later version will be). "
    "Publish the package to an index, or name it with 'NAME @ https://...'."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequirementLine:
    name: str  # canonical
    specifier: str  # normalized str(Requirement), with the canonical name
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted
    origin: str  # "requirements.txt:3", for messages
    local_path: Path | None = None  # a local project directory (``./libs/mypkg``)

    def pip_line(self) -> str:
        return " ".join((self.specifier, *(f"--hash={h}" for h in self.hashes)))


def syntax_error(origin: str, problem: str, hint: str | None = None) -> RequirementSyntaxError:
    return RequirementSyntaxError(f"{origin}: {redact(problem)}", hint=hint)


def check_hash(value: str, origin: str) -> str:
    algorithm, _, digest = value.partition(":")
    length = _HASH_HEX_LENGTHS.get(algorithm)
    if length is None or len(digest) != length or not _HEX_RE.fullmatch(digest):
        hint = "Use --hash=sha256:<64 hex digits> (sha384 and sha512 work too)."
        raise syntax_error(origin, f"bad hash {value!r}", hint)
    return f"{algorithm}:{digest.lower()}"  # pip compares lower-case hex digests


def _looks_like_path(text: str) -> bool:
    if any(c in text for c in "<>=!"):
        return False  # a malformed specifier, not a path
    path_like = text.startswith((".", "~")) or "/" in text or "\\" in text
    return path_like or text.lower().endswith(_ARCHIVE_SUFFIXES)


def _local_directory(text: str, base_dir: Path) -> Path | None:
    """The directory a requirement names (``./libs/pkg``, ``pkg @ file:///...``), if any."""
    candidate = text.split(";", 1)[0].strip()
    if "@" in candidate and not candidate.lower().startswith("file:"):
        candidate = candidate.split("@", 1)[1].strip()
    if candidate.lower().startswith("file:"):
        parts = urlsplit(candidate)
        path = Path(unquote(parts.path))
    elif _looks_like_path(candidate) and not candidate.lower().endswith(_ARCHIVE_SUFFIXES):
        path = Path(candidate)
    else:
        return None
    try:  # "~nobody", NUL bytes, names too long: not a directory of ours
        path = path.expanduser()
        path = path if path.is_absolute() else base_dir / path
        return path if path.is_dir() else None
    except (RuntimeError, OSError, ValueError):
        return None


def local_requirement(
    text: str,
    base_dir: Path,
    origin: str,
    *,
    constraint: bool,
    options: list[tuple[str, str | None]],
) -> RequirementLine | None:
    path = _local_directory(text, base_dir)
    if path is None:
        return None
    if constraint or options:
        problem = f"local path {text!r} cannot be a constraint or carry options"
        raise syntax_error(origin, problem, "Name the directory on a line of its own.")
    project = read_local_project(path, origin=origin)
    marker = text.split(";", 1)[1].strip() if ";" in text else ""
    specifier = f"{project.name} @ {project.path.as_uri()}" + (f" ; {marker}" if marker else "")
    try:
        Requirement(specifier)
    except InvalidRequirement as err:
        raise syntax_error(origin, f"cannot parse {text!r}: {err}", FORM_HINT) from err
    return RequirementLine(
        name=project.name, specifier=specifier, hashes=(), origin=origin, local_path=project.path
    )


def _refuse_unnamed(text: str, origin: str) -> None:
    """A line packaging cannot parse that is a path or URL deserves its own message."""
    candidate = text.split(";", 1)[0].strip()
    if URL_RE.match(candidate) and not candidate.lower().startswith("file:"):
        hint = "Name the package: 'NAME @ URL'."
        raise syntax_error(origin, f"the URL {candidate!r} has no package name", hint)
    if candidate.lower().startswith("file:") or _looks_like_path(candidate):
        raise syntax_error(origin, f"{candidate!r} is a local path", _LOCAL_PATH_HINT)


def requirement_line(
    text: str, hashes: list[str], *, origin: str, constraint: bool
) -> RequirementLine:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # invalid escapes in marker strings only warn
            req = Requirement(text)
    # packaging reads marker strings with ast.literal_eval, which can raise its own errors
    except (InvalidRequirement, SyntaxError, ValueError, Warning) as err:
        _refuse_unnamed(text, origin)
        raise syntax_error(origin, f"cannot parse {text!r}: {err}", FORM_HINT) from err
    if any(not spec.version for spec in req.specifier):  # packaging < 26 takes "pkg==="
        raise syntax_error(origin, f"cannot parse {text!r}: a version is missing", FORM_HINT)
    if req.url is not None:
        try:
            scheme = urlsplit(req.url).scheme
        except ValueError as err:
            raise syntax_error(origin, f"bad URL in {text!r}: {err}", FORM_HINT) from err
        if len(scheme) <= 1 or scheme.lower() == "file":  # one letter: a Windows drive
            raise syntax_error(origin, f"{req.url!r} is a local path", _LOCAL_PATH_HINT)
    elif not req.specifier and req.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise syntax_error(origin, f"{req.name!r} is a local path", _LOCAL_PATH_HINT)
    if constraint and req.extras:
        hint = "Constrain the package without extras; pip refuses extras in constraints."
        raise syntax_error(origin, f"constraint {text!r} has extras", hint)
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    specifier = requirement_text(req)
    # Values from ${VARS} can hold what pip would read as a comment, option or line break.
    if len(specifier.splitlines()) != 1 or specifier.endswith("\\") or COMMENT_RE.search(specifier):
        raise syntax_error(origin, f"{specifier!r} cannot be written back for pip", FORM_HINT)
    return RequirementLine(
        name=req.name, specifier=specifier, hashes=tuple(sorted(set(hashes))), origin=origin
    )


def requirement_text(req: Requirement) -> str:
    """PEP 508 text of a requirement, the same with every packaging release (24.x wrote
    ``name@ url``): it is written back for pip and is part of resolution cache keys."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    text = f"{req.name}{extras}{req.specifier}"
    if req.url:
        text += f" @ {req.url}" + (" " if req.marker else "")
    return text + (f"; {req.marker}" if req.marker else "")
