"""Read pip requirements files on the host, so bad lines fail fast with ``file:line``.

The build container's pip gets one flattened, normalized file (``pip_requirements_text``): it
never sees the host paths of included files, and ``fingerprint()`` keys the resolution cache on
content, not on comments or layout. Line handling follows pip's ``req_file.py``: continuations are
joined first, then comments stripped, then ``${VAR}`` expanded. ``requirements_from_pyproject``
checks the entries of a ``pyproject.toml`` (PEP 621 dependencies and extras, PEP 735 groups) the
same way, each named by its TOML key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from nativebuild.errors import RequirementsFileNotFoundError, RequirementSyntaxError
from nativebuild.inputs.local_project import read_local_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")  # pip's: '#' at line start or after whitespace
_ENV_VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip expands only this form
# pip: the first token that starts with '-' ends the requirement and starts its options
_OPTION_START_RE = re.compile(r"(?:^|\s)-")
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HASH_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}  # pip's STRONG_HASHES
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_NAME_RE = re.compile(r"[A-Z0-9]([A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)  # PEP 508
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz")
_MAX_INCLUDE_DEPTH = 32  # a symlink loop makes ever-new paths; stop it like a cycle

_SHORT_OPTIONS = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-i": "--index-url",
    "-f": "--find-links",
    "-e": "--editable",
}
_FLAG_OPTIONS = frozenset({"--no-index", "--prefer-binary", "--pre", "--require-hashes"})
_PER_REQUIREMENT_OPTIONS = frozenset({"--hash", "--config-settings", "--global-option"})
_LONG_OPTIONS = _FLAG_OPTIONS | _PER_REQUIREMENT_OPTIONS | set(_SHORT_OPTIONS.values())
_LONG_OPTIONS |= {"--extra-index-url", "--trusted-host", "--no-binary", "--only-binary"}
_LONG_OPTIONS |= {"--use-feature"}

_FORM_HINT = (
    "Write one requirement per line as NAME[EXTRAS] SPECIFIERS[; MARKER] or NAME @ URL, "
    'for example: requests[socks]>=2.31; python_version < "3.12"'
)
_BUILD_OPTION_HINT = "Remove it: nativebuild does not pass build options to pip yet."
_LOCAL_PATH_HINT = (
    "Local path dependencies are not supported yet (a later version will be). "
    "Publish the package to an index, or name it with 'NAME @ https://...'."
)


def redact_url(url: str) -> str:
    """Hide the credentials of every URL in ``url``: ``https://u:p@host/`` → ``https://***@host/``."""
    return _USERINFO_RE.sub(r"\1***@", url)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequirementLine:
    name: str  # canonical
    specifier: str  # normalized str(Requirement), with the canonical name
    hashes: tuple[str, ...]  # "sha256:<hex>", sorted
    origin: str  # "requirements.txt:3", for messages
    local_path: Path | None = None  # a local project directory (``./libs/mypkg``)

    def pip_line(self) -> str:
        return " ".join((self.specifier, *(f"--hash={h}" for h in self.hashes)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequirementSet:
    requirements: tuple[RequirementLine, ...]  # file order, duplicates kept (pip merges them)
    constraints: tuple[RequirementLine, ...]
    index_url: str | None
    extra_index_urls: tuple[str, ...]
    trusted_hosts: tuple[str, ...]
    find_links: tuple[str, ...]  # host paths made relative to their file's directory, or URLs
    no_binary: tuple[str, ...]  # canonical names or ":all:"
    only_binary: tuple[str, ...]
    prefer_binary: bool
    pre: bool
    no_index: bool = False
    require_hashes_option: bool = False  # --require-hashes was given

    @property
    def require_hashes(self) -> bool:
        """pip's rule: once any requirement has a hash, every one must."""
        return self.require_hashes_option or any(r.hashes for r in self.requirements)

    def _option_lines(self) -> list[str]:
        lines = []
        if self.no_index:
            lines.append("--no-index")
        if self.index_url is not None:
            lines.append(f"--index-url {shlex.quote(self.index_url)}")
        lines += [f"--extra-index-url {shlex.quote(u)}" for u in self.extra_index_urls]
        lines += [f"--trusted-host {shlex.quote(h)}" for h in self.trusted_hosts]
        # Replaying the set that holds ':all:' first rebuilds exactly the same state in pip.
        binary = [("--no-binary", self.no_binary), ("--only-binary", self.only_binary)]
        binary.sort(key=lambda item: ":all:" not in item[1])
        lines += [f"{option} {name}" for option, names in binary for name in names]
        if self.prefer_binary:
            lines.append("--prefer-binary")
        if self.pre:
            lines.append("--pre")
        if self.require_hashes_option:
            lines.append("--require-hashes")
        return lines

    def pip_requirements_text(self) -> str:
        """The flattened file for pip in the container. Keeps credentials: pip needs them."""
        lines = [*self._option_lines(), *(r.pip_line() for r in self.requirements)]
        return "".join(f"{line}\n" for line in lines)

    def pip_constraints_text(self) -> str:
        return "".join(f"{c.pip_line()}\n" for c in self.constraints)

    def fingerprint(self) -> str:
        """sha256 of the normalized content; credentials redacted, origins left out."""

        def lines(items: tuple[RequirementLine, ...]) -> list[list[object]]:
            return [[r.name, redact_url(r.specifier), list(r.hashes)] for r in items]

        content = {
            "format": 1,
            "requirements": lines(self.requirements),
            "constraints": lines(self.constraints),
            "options": [redact_url(line) for line in self._option_lines()],
            "find_links": [redact_url(link) for link in self.find_links],
        }
        data = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode("ascii")).hexdigest()  # json escapes non-ASCII


def parse_requirements(path: Path, *, env: Mapping[str, str]) -> RequirementSet:
    """Read ``path`` and everything it includes with ``-r``/``-c``."""
    try:
        text = _read_text(path)
    except UnicodeDecodeError as err:
        msg = f"requirements file {path} is not UTF-8 text: {err}"
        raise RequirementSyntaxError(msg, hint="Save it as UTF-8.") from err
    except FileNotFoundError as err:
        msg = f"requirements file {path} not found"
        hint = "Pass -r PATH, or set requirements in [tool.nativebuild] of pyproject.toml."
        raise RequirementsFileNotFoundError(msg, hint=hint) from err
    except (OSError, ValueError) as err:
        msg = f"cannot read requirements file {path}: {err}"
        raise RequirementsFileNotFoundError(msg) from err
    return parse_requirements_text(
        text, origin=str(path), base_dir=path.absolute().parent, read_file=_read_text, env=env
    )


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig")


def parse_requirements_text(
    text: str,
    *,
    origin: str,
    base_dir: Path,
    read_file: Callable[[Path], str],
    env: Mapping[str, str],
) -> RequirementSet:
    """Parse requirements ``text``; ``read_file`` reads ``-r``/``-c`` includes (no other I/O)."""
    parser = _Parser(read_file=read_file, env=env)
    here = _normpath(base_dir / Path(origin).name)  # lets an include of the top file be a cycle
    parser.parse(text, stack=((here, origin),), constraint=False)
    return parser.result()


def _normpath(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; number each logical line by its first physical line."""
    start, parts = 0, list[str]()
    for number, physical in enumerate(text.splitlines(), 1):
        line = physical
        is_comment = _COMMENT_RE.match(line) is not None
        if line.endswith("\\") and not is_comment:
            if not parts:
                start = number
            parts.append(line.rstrip("\\"))
            continue
        if is_comment:
            line = " " + line  # so the comment still matches once joined
        if parts:
            yield start, "".join((*parts, line))
            parts = []
        else:
            yield number, line
    if parts:
        yield start, "".join(parts)


def _syntax_error(origin: str, problem: str, hint: str | None = None) -> RequirementSyntaxError:
    return RequirementSyntaxError(f"{origin}: {redact_url(problem)}", hint=hint)


def _long_option(name: str, origin: str) -> str:
    if name in _LONG_OPTIONS:
        return name
    matches = [option for option in _LONG_OPTIONS if option.startswith(name)]
    if len(matches) == 1 and name != "--":  # optparse accepts unique prefixes; so does pip
        return matches[0]
    close = difflib.get_close_matches(name, sorted(_LONG_OPTIONS), n=1)
    hint = f"Perhaps you meant {close[0]!r}?" if close else None
    raise _syntax_error(origin, f"unknown option {name!r}", hint)


def _split_options(text: str, origin: str) -> list[tuple[str, str | None]]:
    """``--opt=value``, ``--opt value``, ``-rvalue``, ``-r value`` → (long name, value)."""
    try:
        tokens = shlex.split(text)
    except ValueError as err:
        raise _syntax_error(origin, f"cannot split {text!r}: {err}", "Check the quoting.") from err
    options: list[tuple[str, str | None]] = []
    remaining = iter(tokens)
    for token in remaining:
        value: str | None
        if token.startswith("--"):
            name, equals, value = token.partition("=")
            name, value = _long_option(name, origin), (value if equals else None)
        elif token[:2] in _SHORT_OPTIONS:
            name, value = _SHORT_OPTIONS[token[:2]], (token[2:] or None)
        elif token.startswith("-"):
            raise _syntax_error(origin, f"unknown option {token!r}")
        else:
            hint = "Put the requirement first on its line, before its --hash options."
            raise _syntax_error(origin, f"unexpected {token!r} after options", hint)
        if name in _FLAG_OPTIONS:
            if value is not None:
                raise _syntax_error(origin, f"option {name} takes no value")
        else:
            value = next(remaining, None) if value is None else value
            if not value:
                raise _syntax_error(origin, f"option {name} needs a value")
        options.append((name, value))
    return options


def _editable_error(value: str | None, where: str) -> RequirementSyntaxError:
    problem = f"{value!r} is editable; editable installs cannot go into a Lambda archive"
    hint = "Use a package (NAME==VERSION) instead; local paths are not supported yet."
    return _syntax_error(where, problem, hint)


def _check_hash(value: str, origin: str) -> str:
    algorithm, _, digest = value.partition(":")
    length = _HASH_HEX_LENGTHS.get(algorithm)
    if length is None or len(digest) != length or not _HEX_RE.fullmatch(digest):
        hint = "Use --hash=sha256:<64 hex digits> (sha384 and sha512 work too)."
        raise _syntax_error(origin, f"bad hash {value!r}", hint)
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


def _local_requirement(
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
        raise _syntax_error(origin, problem, "Name the directory on a line of its own.")
    project = read_local_project(path, origin=origin)
    marker = text.split(";", 1)[1].strip() if ";" in text else ""
    specifier = f"{project.name} @ {project.path.as_uri()}" + (f" ; {marker}" if marker else "")
    try:
        Requirement(specifier)
    except InvalidRequirement as err:
        raise _syntax_error(origin, f"cannot parse {text!r}: {err}", _FORM_HINT) from err
    return RequirementLine(
        name=project.name, specifier=specifier, hashes=(), origin=origin, local_path=project.path
    )


def _refuse_unnamed(text: str, origin: str) -> None:
    """A line packaging cannot parse that is a path or URL deserves its own message."""
    candidate = text.split(";", 1)[0].strip()
    if _URL_RE.match(candidate) and not candidate.lower().startswith("file:"):
        hint = "Name the package: 'NAME @ URL'."
        raise _syntax_error(origin, f"the URL {candidate!r} has no package name", hint)
    if candidate.lower().startswith("file:") or _looks_like_path(candidate):
        raise _syntax_error(origin, f"{candidate!r} is a local path", _LOCAL_PATH_HINT)


def _requirement_line(
    text: str, hashes: list[str], *, origin: str, constraint: bool
) -> RequirementLine:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # invalid escapes in marker strings only warn
            req = Requirement(text)
    # packaging reads marker strings with ast.literal_eval, which can raise its own errors
    except (InvalidRequirement, SyntaxError, ValueError, Warning) as err:
        _refuse_unnamed(text, origin)
        raise _syntax_error(origin, f"cannot parse {text!r}: {err}", _FORM_HINT) from err
    if any(not spec.version for spec in req.specifier):  # packaging < 26 takes "pkg==="
        raise _syntax_error(origin, f"cannot parse {text!r}: a version is missing", _FORM_HINT)
    if req.url is not None:
        try:
            scheme = urlsplit(req.url).scheme
        except ValueError as err:
            raise _syntax_error(origin, f"bad URL in {text!r}: {err}", _FORM_HINT) from err
        if len(scheme) <= 1 or scheme.lower() == "file":  # one letter: a Windows drive
            raise _syntax_error(origin, f"{req.url!r} is a local path", _LOCAL_PATH_HINT)
    elif not req.specifier and req.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise _syntax_error(origin, f"{req.name!r} is a local path", _LOCAL_PATH_HINT)
    if constraint and req.extras:
        hint = "Constrain the package without extras; pip refuses extras in constraints."
        raise _syntax_error(origin, f"constraint {text!r} has extras", hint)
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    specifier = requirement_text(req)
    # Values from ${VARS} can hold what pip would read as a comment, option or line break.
    if (
        len(specifier.splitlines()) != 1
        or specifier.endswith("\\")
        or _COMMENT_RE.search(specifier)
    ):
        raise _syntax_error(origin, f"{specifier!r} cannot be written back for pip", _FORM_HINT)
    return RequirementLine(
        name=req.name, specifier=specifier, hashes=tuple(sorted(set(hashes))), origin=origin
    )


class _Parser:
    """Accumulates options across a file and its includes, as pip's finder state does."""

    def __init__(self, *, read_file: Callable[[Path], str], env: Mapping[str, str]) -> None:
        self._read_file = read_file
        self._env = env
        self._requirements: list[RequirementLine] = []
        self._constraints: list[RequirementLine] = []
        self._index_url: str | None = None
        self._extra_index_urls: dict[str, None] = {}  # ordered sets
        self._trusted_hosts: dict[str, None] = {}
        self._find_links: dict[str, None] = {}
        self._no_binary: set[str] = set()
        self._only_binary: set[str] = set()
        self._flags: set[str] = set()

    def result(self) -> RequirementSet:
        no_index = "--no-index" in self._flags  # then pip ignores every index URL
        return RequirementSet(
            requirements=tuple(self._requirements),
            constraints=tuple(self._constraints),
            index_url=None if no_index else self._index_url,
            extra_index_urls=() if no_index else tuple(self._extra_index_urls),
            trusted_hosts=tuple(self._trusted_hosts),
            find_links=tuple(self._find_links),
            no_binary=_binary_names(self._no_binary),
            only_binary=_binary_names(self._only_binary),
            prefer_binary="--prefer-binary" in self._flags,
            pre="--pre" in self._flags,
            no_index=no_index,
            require_hashes_option="--require-hashes" in self._flags,
        )

    def parse(self, text: str, *, stack: tuple[tuple[Path, str], ...], constraint: bool) -> None:
        """``stack`` holds (path, name shown) of each including file; the last is this one."""
        base_dir, origin = stack[-1][0].parent, stack[-1][1]
        for number, raw in _logical_lines(text):
            line = _COMMENT_RE.sub("", raw).strip()
            if not line:
                continue
            line = _ENV_VAR_RE.sub(lambda m: self._env.get(m[1], m[0]), line)
            where = f"{origin}:{number}"
            match = _OPTION_START_RE.search(line)
            requirement = (line[: match.start()] if match else line).strip()
            options = _split_options(line[match.start() :], where) if match else []
            if requirement:
                self._requirement(requirement, options, where, base_dir, constraint=constraint)
                continue
            for name, value in options:
                if name in ("--requirement", "--constraint") and value is not None:
                    # pip: '-r' inside a constraints file still adds requirements
                    self._include(value, where, stack=stack, constraint=name == "--constraint")
                else:
                    self._option(name, value, where, base_dir)

    def _requirement(
        self,
        text: str,
        options: list[tuple[str, str | None]],
        where: str,
        base_dir: Path,
        *,
        constraint: bool,
    ) -> None:
        local = _local_requirement(text, base_dir, where, constraint=constraint, options=options)
        if local is not None:
            self._requirements.append(local)
            return
        hashes = []
        for name, value in options:
            if name == "--hash" and value is not None:
                hashes.append(_check_hash(value, where))
            elif name in _PER_REQUIREMENT_OPTIONS:
                raise _syntax_error(where, f"option {name} is not supported", _BUILD_OPTION_HINT)
            elif name == "--editable":
                raise _editable_error(value, where)
            else:
                hint = f"Put {name} on a line of its own."
                raise _syntax_error(where, f"option {name} cannot follow a requirement", hint)
        line = _requirement_line(text, hashes, origin=where, constraint=constraint)
        (self._constraints if constraint else self._requirements).append(line)

    def _option(self, name: str, value: str | None, where: str, base_dir: Path) -> None:
        if name in _FLAG_OPTIONS:
            self._flags.add(name)
        elif value is None or name == "--use-feature":
            pass  # --use-feature changes how pip works, not what it installs
        elif any(c.isspace() for c in value):  # only possible through quotes or ${VARS}
            raise _syntax_error(where, f"option {name} value {value!r} contains whitespace")
        elif name == "--index-url":
            self._index_url = value
        elif name == "--extra-index-url":
            self._extra_index_urls[value] = None
        elif name == "--trusted-host":
            self._trusted_hosts[value] = None
        elif name == "--find-links":
            relative = not _URL_RE.match(value) and not Path(value).is_absolute()
            self._find_links[str(base_dir / value) if relative else value] = None
        elif name in ("--no-binary", "--only-binary"):
            special = ("", ":all:", ":none:")
            bad = [n for n in value.split(",") if n not in special and not _NAME_RE.fullmatch(n)]
            if bad:
                hint = "Give package names, ':all:' or ':none:', separated by commas."
                raise _syntax_error(where, f"{name}: {bad[0]!r} is not a package name", hint)
            sets = (self._no_binary, self._only_binary)
            _merge_binary(value, *(sets if name == "--no-binary" else sets[::-1]))
        elif name == "--editable":
            raise _editable_error(value, where)
        elif name == "--hash":
            hint = "Put --hash after its requirement, on the same logical line."
            raise _syntax_error(where, "option --hash without a requirement", hint)
        else:
            raise _syntax_error(where, f"option {name} is not supported", _BUILD_OPTION_HINT)

    def _include(
        self, value: str, where: str, *, stack: tuple[tuple[Path, str], ...], constraint: bool
    ) -> None:
        if _URL_RE.match(value) or value.lower().startswith("file:"):
            problem = f"remote requirements file {value!r} is not supported"
            raise _syntax_error(where, problem, "Download it and include it by path.")
        including, origin = stack[-1]
        path = _normpath(including.parent / value)
        shown = str(_normpath(Path(origin).parent / value))
        chain = " -> ".join((*(name for _, name in stack), shown))
        if any(path == seen for seen, _ in stack):
            raise _syntax_error(where, f"include cycle: {chain}", "Remove one of the includes.")
        if len(stack) >= _MAX_INCLUDE_DEPTH:
            raise _syntax_error(where, f"includes nest too deep: {chain}")
        try:
            text = self._read_file(path)
        except UnicodeDecodeError as err:
            raise _syntax_error(where, f"{shown} is not UTF-8 text: {err}") from err
        except FileNotFoundError as err:
            msg = f"{where}: included requirements file {shown} not found"
            hint = f"Include paths are relative to the including file's directory, {path.parent}."
            raise RequirementsFileNotFoundError(msg, hint=hint) from err
        except (OSError, ValueError) as err:
            msg = f"{where}: cannot read included requirements file {shown}: {err}"
            raise RequirementsFileNotFoundError(msg) from err
        self.parse(text, stack=(*stack, (path, shown)), constraint=constraint)


def _merge_binary(value: str, target: set[str], other: set[str]) -> None:
    """pip's ``handle_mutual_excludes``: names move between the sets; ':none:' clears."""
    names = value.split(",")
    while ":all:" in names:
        other.clear()
        target.clear()
        target.add(":all:")
        del names[: names.index(":all:") + 1]
        if ":none:" not in names:
            return
    for name in names:
        if name == ":none:":
            target.clear()
        elif name:
            canonical = canonicalize_name(name)
            other.discard(canonical)
            target.add(canonical)


def _binary_names(names: set[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda name: (name != ":all:", name)))


# --- pyproject.toml: PEP 621 dependencies and extras, PEP 735 dependency groups -------------


def read_pyproject(path: Path) -> dict[str, Any]:
    """The TOML of ``path``; a missing or invalid file is the user's to fix."""
    try:
        return tomllib.loads(_read_text(path))
    except FileNotFoundError as err:
        msg = f"{path} not found"
        raise RequirementsFileNotFoundError(msg, hint="Pass the path of an existing file.") from err
    except (OSError, UnicodeDecodeError) as err:
        msg = f"cannot read {path}: {err}"
        raise RequirementsFileNotFoundError(msg) from err
    except tomllib.TOMLDecodeError as err:
        msg = f"{path} is not valid TOML: {err}"
        raise RequirementSyntaxError(msg) from err


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = f"{where} must be an array of requirement strings"
        raise RequirementSyntaxError(msg, hint=_FORM_HINT)
    return value


def _unknown(kind: str, name: str, known: Iterable[str], where: str) -> RequirementSyntaxError:
    valid = ", ".join(sorted(known)) or "none"
    return RequirementSyntaxError(f"{where}: no {kind} {name!r} (declared: {valid})")


def project_requirements(
    data: Mapping[str, Any], *, extras: Sequence[str], origin: str
) -> list[tuple[str, str]]:
    """(requirement, origin) of ``[project.dependencies]`` and each requested extra.

    An extra that names the project itself (``all = ["me[a,b]"]``) is expanded in place, with
    its marker kept, so the resolver never looks for the project on the index.
    """
    project = data.get("project", {})
    optional = project.get("optional-dependencies", {}) if isinstance(project, Mapping) else None
    if not isinstance(optional, Mapping):
        msg = f"{origin}: [project] and [project.optional-dependencies] must be tables"
        raise RequirementSyntaxError(msg)
    dynamic = project.get("dynamic", [])
    if "dependencies" in dynamic or (extras and "optional-dependencies" in dynamic):
        msg = f"{origin}: the dependencies are dynamic (computed by the build backend)"
        hint = "Pass a requirements file or a lock file of the project instead."
        raise RequirementSyntaxError(msg, hint=hint)
    self_name = canonicalize_name(str(project.get("name", "")))
    where = f"{origin}:project.dependencies"
    entries = [
        (text, f"{where}[{i}]")
        for i, text in enumerate(_string_list(project.get("dependencies", []), where))
    ]
    tables: dict[str, tuple[str, object]] = {
        canonicalize_name(name): (name, texts) for name, texts in optional.items()
    }
    pending: list[tuple[str, str | None]] = [(canonicalize_name(e), None) for e in extras]
    seen: set[str] = set()
    while pending:
        extra, outer_marker = pending.pop(0)
        if extra not in tables:
            error = _unknown("extra", extra, tables, f"{origin}: [project.optional-dependencies]")
            raise error
        if extra in seen:
            continue  # requested twice, or a self-reference cycle
        seen.add(extra)
        name, texts = tables[extra]
        where = f"{origin}:project.optional-dependencies.{name}"
        for i, text in enumerate(_string_list(texts, where)):
            try:
                req = Requirement(text)
            except InvalidRequirement:
                entries.append((text, f"{where}[{i}]"))  # reported with its origin later
                continue
            if outer_marker is not None:
                both = f"({req.marker}) and ({outer_marker})" if req.marker else outer_marker
                req.marker = Marker(both)
            if canonicalize_name(req.name) == self_name and not req.url:
                marker = str(req.marker) if req.marker else None
                pending += [(canonicalize_name(e), marker) for e in sorted(req.extras)]
            else:
                entries.append((requirement_text(req) if outer_marker else text, f"{where}[{i}]"))
    return entries


def requirement_text(req: Requirement) -> str:
    """PEP 508 text of a requirement, the same with every packaging release (24.x wrote
    ``name@ url``): it is written back for pip and is part of resolution cache keys."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    text = f"{req.name}{extras}{req.specifier}"
    if req.url:
        text += f" @ {req.url}" + (" " if req.marker else "")
    return text + (f"; {req.marker}" if req.marker else "")


def dependency_group_requirements(
    data: Mapping[str, Any], groups: Sequence[str], *, origin: str
) -> list[tuple[str, str]]:
    """(requirement, origin) of each requested PEP 735 group, ``include-group`` followed."""
    table = data.get("dependency-groups", {})
    if not isinstance(table, Mapping):
        msg = f"{origin}: [dependency-groups] must be a table"
        raise RequirementSyntaxError(msg)
    names: dict[str, str] = {}
    for name in table:
        other = names.setdefault(canonicalize_name(name), name)
        if other != name:
            msg = f"{origin}: dependency groups {other!r} and {name!r} have the same name"
            raise RequirementSyntaxError(msg, hint="Names are compared normalized (PEP 735).")
    entries: list[tuple[str, str]] = []

    def expand(group: str, chain: tuple[str, ...]) -> None:
        key = canonicalize_name(group)
        if key not in names:
            where = f"{origin}: [dependency-groups]{' ' + chain[-1] if chain else ''}"
            error = _unknown("dependency group", group, table, where)
            raise error
        name = names[key]
        if name in chain:
            cycle = " -> ".join((*chain, name))
            msg = f"{origin}: dependency groups include each other: {cycle}"
            raise RequirementSyntaxError(msg, hint="Remove one of the include-group entries.")
        items = table[name]
        if not isinstance(items, list):
            msg = f"{origin}: dependency-groups.{name} must be an array"
            raise RequirementSyntaxError(msg)
        for i, item in enumerate(items):
            where = f"{origin}:dependency-groups.{name}[{i}]"
            if isinstance(item, str):
                entries.append((item, where))
            elif isinstance(item, Mapping) and set(item) == {"include-group"}:
                expand(str(item["include-group"]), (*chain, name))
            else:
                msg = f'{where}: expected a requirement string or {{include-group = "..."}}'
                raise RequirementSyntaxError(msg)

    for group in dict.fromkeys(groups):
        expand(group, ())
    return entries


def requirements_from_pyproject(
    path: Path,
    *,
    extras: Sequence[str],
    groups: Sequence[str],
    env: Mapping[str, str],  # noqa: ARG001 - pip does not expand ${VARS} in pyproject.toml
) -> RequirementSet:
    """``[project.dependencies]``, the requested extras and dependency groups of ``path``.

    Each entry is checked like a requirements file line; its origin names the TOML key, as in
    ``pyproject.toml:project.dependencies[3]`` (indexes count from 0). No index options.
    """
    data = read_pyproject(path)
    origin = str(path)
    if "project" not in data and not groups:
        msg = f"{origin} declares no dependencies: it has no [project] table"
        hint = (
            "Add [project] dependencies, request a [dependency-groups] group, "
            "or pass the project's lock file (poetry.lock, uv.lock) instead."
        )
        raise RequirementSyntaxError(msg, hint=hint)
    entries = project_requirements(data, extras=extras, origin=origin)
    entries += dependency_group_requirements(data, groups, origin=origin)
    lines = tuple(
        _requirement_line(text, [], origin=where, constraint=False) for text, where in entries
    )
    return RequirementSet(
        requirements=lines,
        constraints=(),
        index_url=None,
        extra_index_urls=(),
        trusted_hosts=(),
        find_links=(),
        no_binary=(),
        only_binary=(),
        prefer_binary=False,
        pre=False,
    )
