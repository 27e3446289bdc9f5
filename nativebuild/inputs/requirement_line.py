"""One requirement: PEP 508 text, a URL, a git URL, or a folder or file on this machine, with its
hashes.

Checked here as pip would read it, so a bad line fails at once with its ``file:line``; the text
written back for pip (``RequirementLine.specifier``) is the same with every packaging release.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from nativebuild.errors import RequirementSyntaxError
from nativebuild.inputs.git import GitSource, is_git_url, parse_git_url
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
LOCAL_FORMS = (
    "Local forms: a project folder (./libs/pkg), a wheel or sdist file (./vendor/pkg-1.0-py3-none-any.whl, "
    "/abs/pkg-1.0.tar.gz, file:///abs/pkg-1.0.tar.gz), or NAME @ git+https://host/repo@REV."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequirementLine:
    name: str  # canonical
    specifier: str  # normalized str(Requirement), with the canonical name
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted
    origin: str  # "requirements.txt:3", for messages
    local_path: Path | None = None  # a local project directory (``./libs/mypkg``)
    local_file: Path | None = None  # a wheel or sdist on this machine (``./vendor/x.whl``)
    git: GitSource | None = None  # ``NAME @ git+https://...@REV``: cloned on the host

    @property
    def is_local(self) -> bool:
        """Provided by this machine (a folder, a file, a git clone), not by an index."""
        return self.local_path is not None or self.local_file is not None or self.git is not None

    @property
    def marker(self) -> str | None:
        marker = Requirement(self.specifier).marker
        return str(marker) if marker is not None else None

    def pip_line(self, url: str | None = None) -> str:
        """The line for a resolver; ``url`` replaces the URL of a local requirement with where
        that resolver sees it (a container path, an unpacked git tree)."""
        specifier = self.specifier
        if url is not None:
            req = Requirement(self.specifier)
            req.url = url
            specifier = requirement_text(req)
        return " ".join((specifier, *(f"--hash={h}" for h in self.hashes)))


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


def _split_marker(text: str) -> tuple[str, str]:
    """``./pkg ; marker`` → ("./pkg", "marker"): pip splits a path or URL from its marker at
    the first ';'."""
    candidate, _, marker = text.partition(";")
    return candidate.strip(), marker.strip()


def _local_target(text: str, base_dir: Path, origin: str) -> tuple[Path, str | None] | None:
    """The folder or file a requirement names on this machine (``./libs/pkg``,
    ``./vendor/x.whl``, ``pkg @ file:///...``), with the name it gives, if any; None when it
    names none. A path that does not exist fails here, saying where it was looked for."""
    candidate, _ = _split_marker(text)
    name = None
    if "@" in candidate and not candidate.lower().startswith("file:"):
        name, candidate = (part.strip() for part in candidate.split("@", 1))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?", name):
            return None  # not "NAME @ ...": left to the PEP 508 parser's message
        name = name.split("[", 1)[0]
    if is_git_url(candidate):
        return None
    if candidate.lower().startswith("file:"):
        parts = urlsplit(candidate)
        if parts.netloc not in ("", "localhost"):
            raise syntax_error(origin, f"{candidate!r} names another machine", LOCAL_FORMS)
        written = unquote(parts.path)
    elif _looks_like_path(candidate) and not URL_RE.match(candidate):
        written = candidate
    else:
        return None
    path = _existing(written, base_dir)
    if path is None:
        problem = f"{written!r} is a local path that does not exist"
        hint = f"Paths are relative to the requirements file's folder, {base_dir}. {LOCAL_FORMS}"
        raise syntax_error(origin, problem, hint)
    return path, name


def _existing(written: str, base_dir: Path) -> Path | None:
    try:  # "~nobody", NUL bytes, names too long: not a path of ours
        path = Path(written).expanduser()
        path = path if path.is_absolute() else base_dir / path
        return path if path.is_dir() or path.is_file() else None
    except (RuntimeError, OSError, ValueError):
        return None


def local_file_name(filename: str) -> tuple[str, str]:
    """(canonical name, version) of a wheel or sdist, from its file name; ValueError if it is
    neither."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as err:
        raise ValueError(str(err)) from err
    return str(name), str(version)


def _local_file(path: Path, name: str | None, origin: str) -> str:
    """The canonical name of a wheel or sdist file, checked against the name the line gives."""
    try:
        found, _ = local_file_name(path.name)
    except ValueError as err:
        problem = f"{path.name!r} is neither a wheel nor an sdist file name ({err})"
        hint = (
            "Keep the file name its build gave it: NAME-VERSION(-TAGS).whl or NAME-VERSION.tar.gz."
        )
        raise syntax_error(origin, problem, hint) from err
    if name is not None and canonicalize_name(name) != found:
        problem = f"the requirement names {name}, but {path.name} is {found}"
        raise syntax_error(origin, problem, f"Write '{found} @ ...' or the path alone.")
    return found


def local_requirement(
    text: str,
    base_dir: Path,
    origin: str,
    *,
    constraint: bool,
    hashes: list[str],
) -> RequirementLine | None:
    found = _local_target(text, base_dir, origin)
    if found is None:
        return None
    path, given_name = found
    if constraint:
        problem = f"local path {text!r} cannot be a constraint"
        raise syntax_error(origin, problem, "Name it in a requirements file (-r), not in -c.")
    _, marker = _split_marker(text)
    folder = file = None
    if path.is_dir():
        if hashes:
            hint = "A folder is packed as it is on disk; --hash checks files (wheels, sdists)."
            raise syntax_error(origin, f"local folder {text!r} cannot carry --hash", hint)
        project = read_local_project(path, origin=origin, name=given_name)
        name, folder = project.name, project.path
    else:
        name, file = _local_file(path, given_name, origin), path.resolve()
    specifier = f"{name} @ {(folder or file or path).as_uri()}" + (f" ; {marker}" if marker else "")
    try:
        Requirement(specifier)
    except InvalidRequirement as err:
        raise syntax_error(origin, f"cannot parse {text!r}: {err}", FORM_HINT) from err
    return RequirementLine(
        name=name, specifier=specifier, hashes=tuple(sorted(set(hashes))), origin=origin,
        local_path=folder, local_file=file,
    )  # fmt: skip


def _refuse_unnamed(text: str, origin: str) -> None:
    """A line packaging cannot parse that is a path or URL deserves its own message."""
    candidate, _ = _split_marker(text)
    if URL_RE.match(candidate) and not candidate.lower().startswith("file:"):
        hint = "Name the package: 'NAME @ URL'."
        raise syntax_error(origin, f"the URL {candidate!r} has no package name", hint)
    if candidate.lower().startswith("file:") or _looks_like_path(candidate):
        raise syntax_error(
            origin, f"{candidate!r} is not a local path nativebuild reads", LOCAL_FORMS
        )


def _with_egg_name(text: str) -> str:
    """pip's older form ``git+https://host/repo@v1#egg=NAME`` as ``NAME @ git+...``."""
    candidate, marker = _split_marker(text)
    if not is_git_url(candidate) or "#" not in candidate:
        return text
    egg = parse_qs(candidate.split("#", 1)[1]).get("egg", [""])[0]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", egg):
        return text
    return f"{egg} @ {candidate}" + (f" ; {marker}" if marker else "")


def requirement_line(
    text: str, hashes: list[str], *, origin: str, constraint: bool
) -> RequirementLine:
    text = _with_egg_name(text)
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
    git = None
    if req.url is not None:
        try:
            scheme = urlsplit(req.url).scheme
        except ValueError as err:
            raise syntax_error(origin, f"bad URL in {text!r}: {err}", FORM_HINT) from err
        if is_git_url(req.url):
            git = _git_source(req.url, text, origin, hashes=hashes, constraint=constraint)
        elif len(scheme) <= 1:  # one letter: a Windows drive
            raise syntax_error(origin, f"{req.url!r} is a Windows path", LOCAL_FORMS)
        elif scheme.lower() == "file":  # requirements files read these first: pyproject.toml
            raise syntax_error(origin, f"{req.url!r} is no file or folder here", LOCAL_FORMS)
        elif "+" in scheme:
            problem = (
                f"{req.url!r}: {scheme.split('+')[0]} repositories are not read by nativebuild"
            )
            raise syntax_error(origin, problem, LOCAL_FORMS)
    elif not req.specifier and req.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise syntax_error(origin, f"{req.name!r} is no file here", LOCAL_FORMS)
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
        name=req.name, specifier=specifier, hashes=tuple(sorted(set(hashes))), origin=origin,
        git=git,
    )  # fmt: skip


def _git_source(
    url: str, text: str, origin: str, *, hashes: list[str], constraint: bool
) -> GitSource:
    try:
        source = parse_git_url(url)
    except ValueError as err:
        raise syntax_error(origin, str(err), LOCAL_FORMS) from err
    if hashes:
        hint = (
            "A git requirement is pinned by its commit: write @<full commit id> instead of --hash."
        )
        raise syntax_error(origin, f"{text!r} cannot carry --hash", hint)
    if constraint:
        raise syntax_error(
            origin,
            f"git requirement {text!r} cannot be a constraint",
            "Name it in a requirements file (-r), not in -c.",
        )
    return source


def requirement_text(req: Requirement) -> str:
    """PEP 508 text of a requirement, the same with every packaging release (24.x wrote
    ``name@ url``): it is written back for pip and is part of resolution cache keys."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    text = f"{req.name}{extras}{req.specifier}"
    if req.url:
        text += f" @ {req.url}" + (" " if req.marker else "")
    return text + (f"; {req.marker}" if req.marker else "")
