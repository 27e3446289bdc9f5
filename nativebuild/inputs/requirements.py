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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name

from nativebuild.errors import RequirementsFileNotFoundError, RequirementSyntaxError
from nativebuild.inputs.requirement_line import (
    COMMENT_RE,
    URL_RE,
    RequirementLine,
    check_hash,
    local_requirement,
    requirement_line,
    syntax_error,
)
from nativebuild.redact import redact

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

_ENV_VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")  # pip expands only this form
# pip: the first token that starts with '-' ends the requirement and starts its options
_OPTION_START_RE = re.compile(r"(?:^|\s)-")
_NAME_RE = re.compile(r"[A-Z0-9]([A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)  # PEP 508
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

_BUILD_OPTION_HINT = "Remove it: nativebuild does not pass build options to pip yet."


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
    # Every file read (the one parsed, then its -r/-c includes): where, not what.
    files: tuple[Path, ...] = dataclasses.field(default=(), compare=False)

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
            return [[r.name, redact(r.specifier), list(r.hashes)] for r in items]

        content = {
            "format": 1,
            "requirements": lines(self.requirements),
            "constraints": lines(self.constraints),
            "options": [redact(line) for line in self._option_lines()],
            "find_links": [redact(link) for link in self.find_links],
        }
        data = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode("ascii")).hexdigest()  # json escapes non-ASCII


def parse_requirements(path: Path, *, env: Mapping[str, str]) -> RequirementSet:
    """Read ``path`` and everything it includes with ``-r``/``-c``."""
    try:
        text = read_text(path)
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
    found = parse_requirements_text(
        text, origin=str(path), base_dir=path.absolute().parent, read_file=read_text, env=env
    )
    return dataclasses.replace(found, files=(path.absolute(), *found.files))


def read_text(path: Path) -> str:
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
        is_comment = COMMENT_RE.match(line) is not None
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


def _long_option(name: str, origin: str) -> str:
    if name in _LONG_OPTIONS:
        return name
    matches = [option for option in _LONG_OPTIONS if option.startswith(name)]
    if len(matches) == 1 and name != "--":  # optparse accepts unique prefixes; so does pip
        return matches[0]
    close = difflib.get_close_matches(name, sorted(_LONG_OPTIONS), n=1)
    hint = f"Perhaps you meant {close[0]!r}?" if close else None
    raise syntax_error(origin, f"unknown option {name!r}", hint)


def _split_options(text: str, origin: str) -> list[tuple[str, str | None]]:
    """``--opt=value``, ``--opt value``, ``-rvalue``, ``-r value`` → (long name, value)."""
    try:
        tokens = shlex.split(text)
    except ValueError as err:
        raise syntax_error(origin, f"cannot split {text!r}: {err}", "Check the quoting.") from err
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
            raise syntax_error(origin, f"unknown option {token!r}")
        else:
            hint = "Put the requirement first on its line, before its --hash options."
            raise syntax_error(origin, f"unexpected {token!r} after options", hint)
        if name in _FLAG_OPTIONS:
            if value is not None:
                raise syntax_error(origin, f"option {name} takes no value")
        else:
            value = next(remaining, None) if value is None else value
            if not value:
                raise syntax_error(origin, f"option {name} needs a value")
        options.append((name, value))
    return options


def _editable_error(value: str | None, where: str) -> RequirementSyntaxError:
    problem = f"{value!r} is editable; editable installs cannot go into a Lambda archive"
    hint = "Use a package (NAME==VERSION) instead; local paths are not supported yet."
    return syntax_error(where, problem, hint)


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
        self._included: list[Path] = []

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
            files=tuple(self._included),
        )

    def parse(self, text: str, *, stack: tuple[tuple[Path, str], ...], constraint: bool) -> None:
        """``stack`` holds (path, name shown) of each including file; the last is this one."""
        base_dir, origin = stack[-1][0].parent, stack[-1][1]
        for number, raw in _logical_lines(text):
            line = COMMENT_RE.sub("", raw).strip()
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
        local = local_requirement(text, base_dir, where, constraint=constraint, options=options)
        if local is not None:
            self._requirements.append(local)
            return
        hashes = []
        for name, value in options:
            if name == "--hash" and value is not None:
                hashes.append(check_hash(value, where))
            elif name in _PER_REQUIREMENT_OPTIONS:
                raise syntax_error(where, f"option {name} is not supported", _BUILD_OPTION_HINT)
            elif name == "--editable":
                raise _editable_error(value, where)
            else:
                hint = f"Put {name} on a line of its own."
                raise syntax_error(where, f"option {name} cannot follow a requirement", hint)
        line = requirement_line(text, hashes, origin=where, constraint=constraint)
        (self._constraints if constraint else self._requirements).append(line)

    def _option(self, name: str, value: str | None, where: str, base_dir: Path) -> None:
        if name in _FLAG_OPTIONS:
            self._flags.add(name)
        elif value is None or name == "--use-feature":
            pass  # --use-feature changes how pip works, not what it installs
        elif any(c.isspace() for c in value):  # only possible through quotes or ${VARS}
            raise syntax_error(where, f"option {name} value {value!r} contains whitespace")
        elif name == "--index-url":
            self._index_url = value
        elif name == "--extra-index-url":
            self._extra_index_urls[value] = None
        elif name == "--trusted-host":
            self._trusted_hosts[value] = None
        elif name == "--find-links":
            relative = not URL_RE.match(value) and not Path(value).is_absolute()
            self._find_links[str(base_dir / value) if relative else value] = None
        elif name in ("--no-binary", "--only-binary"):
            special = ("", ":all:", ":none:")
            bad = [n for n in value.split(",") if n not in special and not _NAME_RE.fullmatch(n)]
            if bad:
                hint = "Give package names, ':all:' or ':none:', separated by commas."
                raise syntax_error(where, f"{name}: {bad[0]!r} is not a package name", hint)
            sets = (self._no_binary, self._only_binary)
            _merge_binary(value, *(sets if name == "--no-binary" else sets[::-1]))
        elif name == "--editable":
            raise _editable_error(value, where)
        elif name == "--hash":
            hint = "Put --hash after its requirement, on the same logical line."
            raise syntax_error(where, "option --hash without a requirement", hint)
        else:
            raise syntax_error(where, f"option {name} is not supported", _BUILD_OPTION_HINT)

    def _include(
        self, value: str, where: str, *, stack: tuple[tuple[Path, str], ...], constraint: bool
    ) -> None:
        if URL_RE.match(value) or value.lower().startswith("file:"):
            problem = f"remote requirements file {value!r} is not supported"
            raise syntax_error(where, problem, "Download it and include it by path.")
        including, origin = stack[-1]
        path = _normpath(including.parent / value)
        shown = str(_normpath(Path(origin).parent / value))
        chain = " -> ".join((*(name for _, name in stack), shown))
        if any(path == seen for seen, _ in stack):
            raise syntax_error(where, f"include cycle: {chain}", "Remove one of the includes.")
        if len(stack) >= _MAX_INCLUDE_DEPTH:
            raise syntax_error(where, f"includes nest too deep: {chain}")
        try:
            text = self._read_file(path)
            self._included.append(path)
        except UnicodeDecodeError as err:
            raise syntax_error(where, f"{shown} is not UTF-8 text: {err}") from err
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
