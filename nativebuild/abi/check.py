"""Check every binary of an archive against the runtime it will load in.

Wheel tags say what a wheel claims; this reads what its binaries need. For each file of the
archive (and of its layers) :func:`check_mounts` reports, as :class:`Finding` records:

- a Mach-O or PE file, which Linux cannot load;
- an ELF file for another machine than the target's;
- a ``DT_NEEDED`` library found neither in the runtime image nor in the archive, looked up the
  way ld.so does: ``DT_RPATH``, ``LD_LIBRARY_PATH``, ``DT_RUNPATH`` (``$ORIGIN`` expanded), then
  the image's library cache;
- a symbol version (``GLIBC_2.28``...) that the library it resolves to does not define.

Reading archives is :mod:`nativebuild.abi.elf`'s (``scan_archive_plan``, ``scan_zip``); checking
is pure, but for :func:`check_archive_plan`, which reads the plan's files first.
"""

from __future__ import annotations

import dataclasses
import enum
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from nativebuild.abi.advice import foreign_fix, missing_fix, version_fix, wrong_machine_fix
from nativebuild.abi.elf import Binary, BinaryKind, ElfFacts, parse_version
from nativebuild.abi.runtime_facts import RuntimeFacts
from nativebuild.abi.scan import Mounted, scan_archive_plan
from nativebuild.archive.layout import FUNCTION_ROOT
from nativebuild.archive.plan import ArchivePlan
from nativebuild.errors import AbiError
from nativebuild.targets import Target

__all__ = [
    "Finding",
    "FindingKind",
    "Severity",
    "abi_error",
    "check_archive_plan",
    "check_mounts",
    "missing_libraries",
]

# Versions without a number that glibc defines from a given release on.
_UNNUMBERED = {"GLIBC_ABI_DT_RELR": ("GLIBC", (2, 36))}
_MAX_LISTED = 25


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


class FindingKind(enum.StrEnum):
    FOREIGN_BINARY = "foreign-binary"  # Mach-O or PE
    WRONG_MACHINE = "wrong-machine"
    MISSING_LIBRARY = "missing-library"
    SYMBOL_VERSION = "symbol-version"
    UNREADABLE = "unreadable"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    kind: FindingKind
    severity: Severity
    path: str  # inside its archive
    root: str  # where that archive is extracted: /var/task, or /opt for layers
    package: str | None  # "bcrypt 4.0.1"; None: the user's source
    needs: str
    has: str
    fix: str
    library: str | None = None  # the soname a missing-library or symbol-version finding is about

    @property
    def origin(self) -> str:
        return self.package or "your source"

    def describe(self) -> str:
        return f"{self.path} ({self.origin}) needs {self.needs}, but {self.has}. {self.fix}"

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, enum.Enum) else v)
            for k, v in dataclasses.asdict(self).items()
        }


# --- checking ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Hit:
    """Where a needed library resolves: a file of a mounted archive, or the runtime image."""

    binary: Binary | None = None  # set for a file of an archive...
    root: str = ""  # ...extracted here


_RUNTIME = _Hit()  # a library of the runtime image


class _Index:
    def __init__(self, mounts: Sequence[Mounted], facts: RuntimeFacts) -> None:
        self.mounts = mounts
        self.facts = facts
        self.binaries = {(m.root, b.path): b for m in mounts for b in m.binaries}

    def find(self, directory: str, name: str) -> _Hit | None:
        path = posixpath.normpath(posixpath.join(directory, name))
        for mount in self.mounts:
            prefix = mount.root.rstrip("/") + "/"
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                if rel in mount.files:
                    binary = self.binaries.get((mount.root, rel))
                    return _Hit(binary=binary, root=mount.root)
                return None
        dirs = self.facts.libraries.get(name, ())
        return _RUNTIME if posixpath.normpath(directory) in dirs else None


def _expand(entries: Iterable[str], origin: str, machine: str) -> Iterator[str]:
    for entry in entries:
        expanded = (
            entry.replace("${ORIGIN}", origin)
            .replace("$ORIGIN", origin)
            .replace("${LIB}", "lib64")
            .replace("$LIB", "lib64")
            .replace("${PLATFORM}", machine)
            .replace("$PLATFORM", machine)
        )
        # A relative entry is relative to the working directory, which Lambda sets to /var/task.
        yield posixpath.normpath(posixpath.join(FUNCTION_ROOT, expanded))


def _resolve(name: str, dirs: Sequence[str], index: _Index) -> _Hit | None:
    if "/" in name:
        return index.find(FUNCTION_ROOT, name)
    for directory in dirs:
        hit = index.find(directory, name)
        if hit is not None:
            return hit
    # The image's library cache and default directories.
    return _RUNTIME if index.facts.libraries.get(name) else None


class _Loads:
    """Where each need of each archive ELF resolves, over every chain of loaders reaching it.

    ld.so searches, for an object without DT_RUNPATH, the DT_RPATH of the object and of each
    object that loaded it, up the chain (numpy's extension carries ``$ORIGIN/../../numpy.libs``
    for the libraries its vendored OpenBLAS needs); then LD_LIBRARY_PATH; then the object's own
    DT_RUNPATH, which nothing inherits. A need counts as met when any chain meets it.
    """

    def __init__(self, index: _Index, target: Target) -> None:
        self.index = index
        self.machine = target.arch.machine
        self.hits: dict[tuple[str, str], dict[str, list[_Hit]]] = {}
        self.dirs: dict[tuple[str, str], list[str]] = {}  # as loaded on its own, for messages
        self._seen: set[tuple[str, str, tuple[str, ...]]] = set()

    def follows(self, binary: Binary) -> bool:
        elf = binary.elf
        return elf is not None and elf.loadable and elf.machine == self.machine

    def walk(self, root: str, binary: Binary, inherited: tuple[str, ...] = ()) -> None:
        if (root, binary.path, inherited) in self._seen or binary.elf is None:
            return
        self._seen.add((root, binary.path, inherited))
        elf, machine, facts = binary.elf, self.index.facts.machine, self.index.facts
        origin = posixpath.dirname(posixpath.join(root, binary.path))
        # DT_RUNPATH disables the object's DT_RPATH and the search of its loaders' ones.
        own = () if elf.runpath else tuple(_expand(elf.rpath, origin, machine))
        rpaths = () if elf.runpath else own + inherited
        dirs = [*rpaths, *facts.ld_library_path, *_expand(elf.runpath, origin, machine)]
        key = (root, binary.path)
        if not inherited:
            self.dirs[key] = dirs
        hits = self.hits.setdefault(key, {})
        for name in dict.fromkeys([*elf.needed, *(n.library for n in elf.version_needs)]):
            found = hits.setdefault(name, [])
            hit = _resolve(name, dirs, self.index)
            if hit is None:
                continue
            if hit not in found:
                found.append(hit)
            if hit.binary is not None and self.follows(hit.binary):
                # Each directory once, so a cycle of libraries ends (ld.so loads each once).
                self.walk(hit.root, hit.binary, tuple(dict.fromkeys(own + inherited)))


def check_mounts(mounts: Sequence[Mounted], target: Target, facts: RuntimeFacts) -> list[Finding]:
    """Every problem the binaries of ``mounts`` will have in the runtime, errors first."""
    index = _Index(mounts, facts)
    loads = _Loads(index, target)
    for mount in mounts:
        for binary in mount.binaries:
            if loads.follows(binary):
                loads.walk(mount.root, binary)
    found: dict[tuple[str, str, str, str], Finding] = {}
    for mount in mounts:
        for binary in mount.binaries:
            for finding in _check_binary(binary, mount.root, loads, target):
                found.setdefault(
                    (finding.root, finding.path, finding.kind, finding.library or ""), finding
                )
    order = {Severity.ERROR: 0, Severity.WARNING: 1}
    return sorted(found.values(), key=lambda f: (order[f.severity], f.root, f.path, f.kind))


def check_archive_plan(
    plan: ArchivePlan, target: Target, facts: RuntimeFacts, *, layers: Sequence[Mounted] = ()
) -> list[Finding]:
    """Check a planned function archive (to run after acquiring wheels, before write_zip)."""
    return check_mounts([scan_archive_plan(plan), *layers], target, facts)


def _finding(binary: Binary, root: str, **fields: Any) -> Finding:
    return Finding(path=binary.path, root=root, package=binary.package, **fields)


def _check_binary(binary: Binary, root: str, loads: _Loads, target: Target) -> Iterator[Finding]:
    if binary.kind is not BinaryKind.ELF:
        yield _foreign(binary, root)
        return
    elf = binary.elf
    if elf is None:
        # Not fatal: a file the reader cannot parse may still load (or never be loaded).
        yield _finding(
            binary, root, kind=FindingKind.UNREADABLE, severity=Severity.WARNING,
            needs="to be a valid ELF file", has=f"it is {binary.error or 'unreadable'}",
            fix="If it is meant to load, rebuild the package that ships it.",
        )  # fmt: skip
        return
    if elf.machine != target.arch.machine or elf.elf_class != 64:
        yield _wrong_machine(binary, root, elf, target)
        return
    if not elf.loadable:
        return  # object files, core dumps: never mapped by the loader
    hits = loads.hits[(root, binary.path)]
    for name in elf.needed:
        if not hits[name]:
            yield _missing(binary, root, name, loads.dirs[(root, binary.path)], loads.index.facts)
    yield from _check_versions(binary, root, elf, hits, loads.index.facts)


# --- findings ---------------------------------------------------------------------------------


def _loadable_name(path: str) -> bool:
    leaf = path.rsplit("/", 1)[-1]
    return leaf.endswith(".so") or ".so." in leaf


def _foreign(binary: Binary, root: str) -> Finding:
    system = "macOS" if binary.kind is BinaryKind.MACHO else "Windows"
    if not _loadable_name(binary.path):
        # setuptools and pip ship Windows launchers (.exe) that nothing loads on Linux.
        return _finding(
            binary, root, kind=FindingKind.FOREIGN_BINARY, severity=Severity.WARNING,
            needs=f"{system} to run ({binary.kind} file)", has="Lambda runs Linux",
            fix="Nothing loads it on Linux; it only takes space.",
        )  # fmt: skip
    where = foreign_fix(binary)
    return _finding(
        binary, root, kind=FindingKind.FOREIGN_BINARY, severity=Severity.ERROR,
        needs=f"{system} to load ({binary.kind} file)",
        has="Lambda loads only Linux ELF files (\"invalid ELF header\")", fix=where,
    )  # fmt: skip


def _wrong_machine(binary: Binary, root: str, elf: ElfFacts, target: Target) -> Finding:
    wanted = target.arch.machine
    fix = wrong_machine_fix(binary, elf, target)
    machine = elf.machine if elf.elf_class == 64 else f"{elf.machine} ({elf.elf_class}-bit)"
    return _finding(
        binary, root, kind=FindingKind.WRONG_MACHINE,
        severity=Severity.ERROR if elf.loadable else Severity.WARNING,
        needs=f"a {machine} machine", has=f"the target is {wanted} (64-bit)", fix=fix,
    )  # fmt: skip


def _missing(
    binary: Binary, root: str, name: str, dirs: Sequence[str], facts: RuntimeFacts
) -> Finding:
    # Other versions of the same library: the same name up to its last ".so".
    stem = name.rsplit(".so", 1)[0]
    similar = sorted(lib for lib in facts.libraries if lib.rsplit(".so", 1)[0] == stem)
    also = f"; the runtime has only {', '.join(similar)}" if similar else ""
    searched = ", ".join(dict.fromkeys(dirs))
    return _finding(
        binary, root, kind=FindingKind.MISSING_LIBRARY, severity=Severity.ERROR, library=name,
        needs=f"the shared library {name}",
        has=f"neither the archive nor the runtime has it (searched {searched}, then the library "
        f"cache of {facts.description}){also}",
        fix=missing_fix(binary, name),
    )  # fmt: skip


def _version_finding(
    binary: Binary,
    root: str,
    library: str,
    unmet: Sequence[str],
    symbols: Mapping[str, tuple[str, ...]],
    shipped: Binary | None,
    facts: RuntimeFacts,
) -> Finding:
    needs = ", ".join(f"{v} ({', '.join(symbols[v])})" if symbols.get(v) else v for v in unmet)
    if shipped is not None:
        defined = shipped.elf.version_definitions if shipped.elf else ()
        has = f"the archive's {shipped.path} defines only {', '.join(defined)}"
    elif library in facts.versions:
        prefixes = {v.split("_", 1)[0] for v in unmet}
        newest = ", ".join(facts.ceiling_text(p) for p in sorted(prefixes) if p in facts.ceilings)
        has = f"the runtime's {library} ({facts.description}) lacks it" + (
            f": its newest is {newest}" if newest else ""
        )
    else:
        prefixes = {parsed[0] for v in unmet if (parsed := _UNNUMBERED.get(v) or parse_version(v))}
        newest = ", ".join(facts.ceiling_text(p) for p in sorted(prefixes))
        has = f"{facts.description} goes up to {newest}"
    return _finding(
        binary, root, kind=FindingKind.SYMBOL_VERSION, severity=Severity.ERROR, library=library,
        needs=f"{needs} from {library}", has=has, fix=version_fix(binary, shipped),
    )  # fmt: skip


def _unmet(versions: Iterable[str], hit: _Hit, name: str, facts: RuntimeFacts) -> list[str]:
    """The versions that the library ``hit`` points at does not define."""
    if hit.binary is not None:  # a library the archive ships
        defined = hit.binary.elf.version_definitions if hit.binary.elf else ()
        # An unversioned library satisfies any need (ld.so only warns).
        return [v for v in versions if v not in defined] if defined else []
    if name in facts.versions:  # a probed image: exactly what the file defines
        return [v for v in versions if v not in facts.versions[name]]
    unmet = []
    for version in versions:
        parsed = _UNNUMBERED.get(version) or parse_version(version)
        if parsed is None:
            continue
        ceiling = facts.ceilings.get(parsed[0])
        if ceiling is not None and parsed[1] > ceiling:
            unmet.append(version)
    return unmet


def _check_versions(
    binary: Binary,
    root: str,
    elf: ElfFacts,
    hits: Mapping[str, Sequence[_Hit]],
    facts: RuntimeFacts,
) -> Iterator[Finding]:
    by_library: dict[str, list[str]] = {}
    symbols: dict[str, tuple[str, ...]] = {}
    for need in elf.version_needs:
        if not need.weak:
            by_library.setdefault(need.library, []).append(need.version)
            symbols[need.version] = need.symbols
    for library, versions in by_library.items():
        unmet = [(hit, _unmet(versions, hit, library, facts)) for hit in hits[library]]
        if unmet and all(missing for _, missing in unmet):  # no hit: reported as missing
            hit, missing = unmet[0]
            yield _version_finding(binary, root, library, missing, symbols, hit.binary, facts)


def missing_libraries(findings: Iterable[Finding]) -> dict[str, tuple[str, ...]]:
    """Archive path → the sonames it needs and nothing provides: the input of a repair step."""
    missing: dict[str, list[str]] = {}
    for finding in findings:
        if finding.kind is FindingKind.MISSING_LIBRARY and finding.library is not None:
            missing.setdefault(finding.path, []).append(finding.library)
    return {path: tuple(sorted(set(names))) for path, names in sorted(missing.items())}


def abi_error(findings: Sequence[Finding], target: Target) -> AbiError | None:
    """The error for the findings that stop a build, or None when there are none."""
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if not errors:
        return None
    files = len({(f.root, f.path) for f in errors})
    lines = [f"- {f.describe()}" for f in errors[:_MAX_LISTED]]
    if len(errors) > _MAX_LISTED:
        lines.append(f"- ... and {len(errors) - _MAX_LISTED} more")
    msg = (
        f"{files} binary file(s) of the archive for {target.describe()} cannot load in the "
        "runtime:\n" + "\n".join(lines)
    )
    hint = (
        "Fix each as it says; `nativebuild verify ARCHIVE` then proves the imports in the runtime."
    )
    return AbiError(msg, hint=hint)
