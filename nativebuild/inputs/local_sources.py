"""What this machine provides, pinned to exact files before anything is resolved.

Project folders and git trees are packed into byte-reproducible sdists kept in the cache, whose
sha256 joins the cache keys (editing the code, or a branch moving, rebuilds that package and
nothing else); a git tree is packed once per commit, which names it in the cache. Wheel and
sdist files are hashed where they lie and checked against their ``--hash``; they are planned
like any downloaded file. Nothing here starts a container.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from nativebuild.cache.keys import build_key
from nativebuild.cache.local import LocalCache
from nativebuild.errors import DownloadError, ResolutionError
from nativebuild.inputs.git import (
    GitRunner,
    GitSource,
    Revision,
    checkout,
    project_root,
    resolve_revision,
)
from nativebuild.inputs.local_project import LocalProject, pack, read_local_project
from nativebuild.inputs.locked import LockedPackage
from nativebuild.inputs.requirement_line import local_file_name
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import LocalPin, Pin
from nativebuild.redact import redact
from nativebuild.reporting import Reporter

GIT_TREE_KIND = "git-tree"
GIT_TREE_VERSION = "1"  # bump when packing a tree changes its bytes


def pin_requirements(
    requirements: RequirementSet, *, cache: LocalCache, git: GitRunner, reporter: Reporter
) -> tuple[LocalPin, ...]:
    """A pin for each requirement this machine provides, in file order."""
    pins = []
    for line in requirements.local:
        if line.local_path is not None:
            pin, kind = pack_folder(line.local_path, origin=line.origin, cache=cache), "folder"
        elif line.local_file is not None:
            pin, kind = pin_file(line.local_file, origin=line.origin, hashes=line.hashes), "file"
        else:
            assert line.git is not None  # noqa: S101 - is_local: one of the three
            pin, kind = pin_git(
                line.git, name=line.name, origin=line.origin, cache=cache, git=git,
                reporter=reporter,
            ), "git"  # fmt: skip
        pins.append(LocalPin(pin=pin, kind=kind, origin=line.origin, marker=line.marker))
    return tuple(pins)


def pin_locked(
    packages: Iterable[LockedPackage], *, cache: LocalCache, git: GitRunner, reporter: Reporter
) -> tuple[LocalPin, ...]:
    """A pin for each folder and git commit of a lock file (its files carry their hashes)."""
    pins = []
    for package in packages:
        origin = f"{package.origin}: {package.name}"
        if package.directory is not None:
            folder = Path(package.directory)
            pin = pack_folder(folder, origin=origin, cache=cache, name=package.name)
            pins.append(LocalPin(pin=pin, kind="folder", origin=origin, marker=package.marker))
        elif package.git is not None:
            locked = package.git
            source = GitSource(url=locked.url, rev=locked.commit, subdirectory=locked.subdirectory)
            pin = pin_git(
                source, name=package.name, origin=origin, cache=cache, git=git, reporter=reporter
            )
            pins.append(LocalPin(pin=pin, kind="git", origin=origin, marker=package.marker))
    return tuple(pins)


def _pack(project: LocalProject, cache: LocalCache, *, within: Path | None = None) -> str:
    with cache.scratch_dir() as work:
        packed = work / project.archive_name
        sha256 = pack(project, packed, within=within)
        cache.put_file(packed, sha256=sha256, filename=project.archive_name, move=True)
    return sha256


def pack_folder(path: Path, *, origin: str, cache: LocalCache, name: str | None = None) -> Pin:
    """A local project folder, packed into the cache."""
    project = read_local_project(path, origin=origin, name=name)
    sha256 = _pack(project, cache)
    return Pin(
        name=project.name, version=project.version, filename=project.archive_name,
        url=project.path.as_uri(), sha256=sha256,
    )  # fmt: skip


def pin_file(path: Path, *, origin: str, hashes: Sequence[str]) -> Pin:
    """A wheel or sdist on this machine, hashed where it lies: with ``--hash``, one must match."""
    digests = {name: hashlib.new(name) for name in ("sha256", *(h.split(":")[0] for h in hashes))}
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                for digest in digests.values():
                    digest.update(chunk)
    except OSError as err:
        msg = f"{origin}: cannot read {path}: {err.strerror or err}"
        raise DownloadError(msg, hint="Check the file's path and permissions.") from err
    found = {f"{name}:{digest.hexdigest()}" for name, digest in digests.items()}
    sha256 = digests["sha256"].hexdigest()
    if hashes and not found & set(hashes):
        msg = (
            f"{origin}: {path.name} has sha256 {sha256}, which none of its --hash values "
            "match. The file was refused."
        )
        hint = "Check that the file is the one you pinned, or update its --hash."
        raise DownloadError(msg, hint=hint)
    name, version = local_file_name(path.name)
    return Pin(name=name, version=version, filename=path.name, url=path.as_uri(), sha256=sha256)


def _tree_key(commit: str, subdirectory: str | None) -> str:
    # The commit names the tree: the same commit from any clone or mirror is the same archive.
    return build_key(
        {"kind": GIT_TREE_KIND, "commit": commit, "subdirectory": subdirectory or "",
         "version": GIT_TREE_VERSION}
    )  # fmt: skip


def _cached_tree(
    cache: LocalCache, key: str, name: str, origin: str
) -> tuple[str, str, str, str] | None:
    document = cache.get_json(GIT_TREE_KIND, key)
    if document is None:
        return None
    try:
        found = tuple(str(document[f]) for f in ("name", "version", "filename", "sha256"))
    except KeyError:
        return None
    if found[0] != name:
        msg = f"{origin}: the requirement names {name}, but the project in that tree is {found[0]}"
        raise ResolutionError(msg, hint=f"Write '{found[0]} @ git+...' in the requirement.")
    if cache.get_file(found[3], found[2]) is None:
        return None
    return found[0], found[1], found[2], found[3]


def _announce(source: GitSource, revision: Revision, origin: str, reporter: Reporter) -> None:
    """Say what a moving revision resolved to; warn when the requirement pins nothing."""
    shown, commit = redact(source.url), revision.commit
    if revision.kind == "default":
        reporter.warning(
            f"{origin}: {shown} names no revision, so this builds its default branch, now at "
            f"commit {commit[:12]}: the build is not pinned. Write @{commit} to pin it."
        )
    elif revision.kind in ("branch", "ref"):
        reporter.detail(
            f"{origin}: branch {source.rev} of {shown} is at commit {commit[:12]} now "
            f"(a branch moves; @{commit} pins it)"
        )
    elif revision.kind == "tag":
        reporter.detail(f"{origin}: tag {source.rev} of {shown} is commit {commit[:12]}")


def pin_git(
    source: GitSource,
    *,
    name: str,
    origin: str,
    cache: LocalCache,
    git: GitRunner,
    reporter: Reporter,
) -> Pin:
    """The tree of a git requirement at its commit, packed into the cache (once per commit)."""
    revision = resolve_revision(source, git)
    if revision is not None:
        _announce(source, revision, origin, reporter)
        cached = _cached_tree(cache, _tree_key(revision.commit, source.subdirectory), name, origin)
        if cached is not None:
            found_name, version, filename, sha256 = cached
            return Pin(
                name=found_name, version=version, filename=filename,
                url=source.pinned_url(revision.commit), sha256=sha256,
            )  # fmt: skip
    # A clone may hold credentials (in its config, in files): never under the cache.
    with tempfile.TemporaryDirectory(prefix="nativebuild-git-") as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        reporter.detail(f"{origin}: cloning {redact(source.url)}")
        commit = checkout(source, revision, tree, git)
        project = read_local_project(project_root(source, tree), origin=origin, name=name)
        sha256 = _pack(project, cache, within=tree)
    document = {
        "name": project.name, "version": project.version, "filename": project.archive_name,
        "sha256": sha256,
    }  # fmt: skip
    cache.put_json(GIT_TREE_KIND, _tree_key(commit, source.subdirectory), document)
    return Pin(
        name=project.name, version=project.version, filename=project.archive_name,
        url=source.pinned_url(commit), sha256=sha256,
    )  # fmt: skip
