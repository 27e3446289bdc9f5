"""Git on the host: the one module that runs it.

A ``NAME @ git+https://...@REV`` requirement is cloned here, with the user's own git: ssh
agent, credential helpers and ``~/.netrc`` are used by git on this machine and never reach a
container, a log, the cache or an archive. The revision is pinned to its commit first (a
branch or tag is asked of the remote each build; a full commit id needs no network), then
exactly that commit is fetched into a temporary directory outside the cache, whose tree
nativebuild packs like a local project.

Parsing URLs and reading ``git ls-remote`` are pure; :class:`HostGit` (subprocess, never a
shell) is the default :class:`GitRunner`, so tests can answer for a git server.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

from nativebuild.errors import DownloadError, ResolutionError
from nativebuild.redact import redact, redact_secrets, strip_credentials

TIMEOUT_S = 900
SCHEMES = ("git+https", "git+http", "git+ssh", "git+file", "git+git")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # sha1 or sha256 object names
_SHORT_COMMIT_RE = re.compile(r"[0-9a-f]{7,63}")
RevisionKind = Literal["commit", "branch", "tag", "default", "ref"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


class GitRunner(Protocol):
    def run(self, args: Sequence[str], *, cwd: Path | None = None) -> GitResult: ...


class HostGit:
    """The user's ``git``, with the user's environment (ssh agent, ``GIT_SSH_COMMAND``,
    credential helpers, ``HOME`` for ``~/.netrc``), never prompting on a terminal."""

    def __init__(self, env: Mapping[str, str], *, binary: str = "git") -> None:
        self._env = {**env, "GIT_TERMINAL_PROMPT": "0", "GIT_ADVICE": "0", "LC_ALL": "C"}
        self._binary = binary

    def run(self, args: Sequence[str], *, cwd: Path | None = None) -> GitResult:
        try:
            done = subprocess.run(
                [self._binary, *args], cwd=cwd, env=self._env, capture_output=True, text=True,
                timeout=TIMEOUT_S, check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except FileNotFoundError:
            return GitResult(returncode=127, stdout="", stderr="git is not installed")
        except (OSError, subprocess.TimeoutExpired) as err:
            return GitResult(returncode=126, stdout="", stderr=str(err))
        return GitResult(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GitSource:
    """Where a git requirement points: what git clones (credentials as written, for the host's
    git only), the revision asked for, and the project's folder inside the repository."""

    url: str  # without "git+": https://user:token@host/repo.git, ssh://git@host/repo, file:///r
    rev: str | None
    subdirectory: str | None = None

    @property
    def public_url(self) -> str:
        """The URL without credentials: what messages, pins and manifests may show."""
        return strip_credentials(self.url)

    def pinned_url(self, commit: str) -> str:
        """``git+URL@COMMIT[#subdirectory=...]``, without credentials."""
        fragment = f"#subdirectory={self.subdirectory}" if self.subdirectory else ""
        return f"git+{self.public_url}@{commit}{fragment}"

    def secrets(self) -> tuple[str, ...]:
        """The password of the URL, if any: never to be shown, even inside git's messages."""
        parts = urlsplit(self.url)
        return tuple(s for s in (parts.password,) if s)


def is_commit(rev: str | None) -> bool:
    """Whether ``rev`` is a full commit id: the only revision that pins a tree."""
    return rev is not None and _COMMIT_RE.fullmatch(rev.lower()) is not None


def is_git_url(url: str) -> bool:
    return url.lower().startswith("git+")


def parse_git_url(url: str) -> GitSource:
    """``git+SCHEME://HOST/PATH[@REV][#subdirectory=DIR]`` as pip reads it; ValueError with
    what is supported when it is something else."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        if is_git_url(url) and "://" not in url:
            msg = (
                f"{redact(url)} is not a URL git+ssh:// can read (scp-like 'git+git@host:repo' is "
                "not accepted by pip either): write git+ssh://git@host/org/repo.git"
            )
        else:
            schemes = ", ".join(f"{s}://" for s in SCHEMES)
            msg = f"{redact(url)} is not a git URL nativebuild reads ({schemes})"
        raise ValueError(msg)
    body, _, fragment = url[len("git+") :].partition("#")
    parts = urlsplit(body)
    path = parts.path
    rev = None
    if "@" in path:
        path, rev = path.rsplit("@", 1)
        if not rev:
            msg = f"{redact(url)} ends in '@' with no revision after it"
            raise ValueError(msg)
    if not path.strip("/") and parts.scheme != "file":
        msg = f"{redact(url)} names no repository"
        raise ValueError(msg)
    options = parse_qs(fragment)
    subdirectory = options.get("subdirectory", [None])[0]
    if subdirectory is not None:
        clean = Path(subdirectory)
        if clean.is_absolute() or ".." in clean.parts:
            msg = f"{redact(url)}: subdirectory {subdirectory!r} must stay inside the repository"
            raise ValueError(msg)
        subdirectory = clean.as_posix().strip("/") or None
    return GitSource(url=parts._replace(path=path).geturl(), rev=rev, subdirectory=subdirectory)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Revision:
    commit: str
    kind: RevisionKind  # how the requirement named it: a commit is pinned, the rest move

    @property
    def pinned(self) -> bool:
        return self.kind == "commit"


def read_ls_remote(output: str, rev: str | None) -> Revision | None:
    """The commit ``rev`` names in ``git ls-remote`` output: HEAD when ``rev`` is None, else a
    branch, then a tag (peeled to its commit), then any full ref name."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        commit, _, ref = line.partition("\t")
        if commit and ref:
            refs[ref.strip()] = commit.strip().lower()
    if rev is None:
        return Revision(commit=refs["HEAD"], kind="default") if "HEAD" in refs else None
    branch, tag = f"refs/heads/{rev}", f"refs/tags/{rev}"
    if branch in refs:
        return Revision(commit=refs[branch], kind="branch")
    if tag in refs:  # an annotated tag's "^{}" line names its commit
        return Revision(commit=refs.get(f"{tag}^{{}}", refs[tag]), kind="tag")
    if rev.startswith("refs/") and rev in refs:
        return Revision(commit=refs.get(f"{rev}^{{}}", refs[rev]), kind="ref")
    return None


def _failure(source: GitSource, action: str, done: GitResult) -> DownloadError:
    detail = redact_secrets(redact(done.stderr.strip()), source.secrets())
    tail = "\n".join(detail.splitlines()[-8:])
    msg = f"git could not {action} {redact(source.url)}:\n{tail}"
    if done.returncode == 127:
        hint = "Install git on this machine: nativebuild clones git requirements with it."
    else:
        hint = (
            "Check that this machine's git can reach the repository (`git ls-remote URL`): your "
            "ssh agent, credential helper or ~/.netrc are used as they are, on this machine only."
        )
    return DownloadError(msg, hint=hint)


def resolve_revision(source: GitSource, git: GitRunner) -> Revision | None:
    """The commit the requirement names. A full commit id needs no network; a branch, tag or
    no revision at all is asked of the remote now. None: ``rev`` is no ref the remote lists
    (perhaps an abbreviated commit, which only a full fetch can tell)."""
    if source.rev is not None and is_commit(source.rev):
        return Revision(commit=source.rev.lower(), kind="commit")
    done = git.run(["ls-remote", "--", source.url])
    if done.returncode != 0:
        raise _failure(source, "list the branches and tags of", done)
    found = read_ls_remote(done.stdout, source.rev)
    if found is None and (source.rev is None or not _SHORT_COMMIT_RE.fullmatch(source.rev)):
        what = "default branch (HEAD)" if source.rev is None else f"branch or tag {source.rev!r}"
        msg = f"{redact(source.url)} has no {what}."
        hint = "Name an existing branch, tag or full commit id after '@'."
        raise ResolutionError(msg, hint=hint)
    return found


def checkout(source: GitSource, revision: Revision | None, dest: Path, git: GitRunner) -> str:
    """Fetch the commit into ``dest`` (a new, empty directory) and check it out, with its
    submodules; return the commit id. Only the commit is fetched where the server allows it
    (GitHub, GitLab, git 2.x); otherwise every branch and tag, then the commit is found."""

    def run(*args: str, action: str) -> GitResult:
        done = git.run(["-C", str(dest), *args])
        if done.returncode != 0:
            raise _failure(source, action, done)
        return done

    run("init", "--quiet", action="prepare a clone of")
    everything = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
    if revision is not None:
        fetch = ["-C", str(dest), "fetch", "--quiet", "--depth", "1", "--", source.url]
        if git.run([*fetch, revision.commit]).returncode == 0:
            target = "FETCH_HEAD"
        else:
            run("fetch", "--quiet", "--", source.url, *everything, action="fetch")
            target = f"{revision.commit}^{{commit}}"
        wanted = revision.commit
    else:  # an abbreviated commit: only the whole history can tell which one
        run("fetch", "--quiet", "--", source.url, *everything, action="fetch")
        wanted = str(source.rev)
        target = f"{wanted}^{{commit}}"
    parsed = git.run(["-C", str(dest), "rev-parse", "--verify", "--quiet", target])
    if parsed.returncode != 0:
        msg = f"{redact(source.url)} has no commit {wanted}."
        hint = "Name an existing branch, tag or full commit id after '@'."
        raise ResolutionError(msg, hint=hint)
    commit = parsed.stdout.strip()
    if revision is not None and commit != revision.commit:
        msg = f"{redact(source.url)}: asked for commit {revision.commit}, git fetched {commit}."
        raise DownloadError(msg, hint="Run again; if it persists, the remote is inconsistent.")
    run(
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "--quiet",
        "--detach",
        commit,
        action="check out",
    )
    if (dest / ".gitmodules").is_file():
        # Relative submodule URLs are relative to the superproject's remote.
        run("-c", f"remote.origin.url={source.url}", "-c", "protocol.file.allow=user",
            "submodule", "update", "--init", "--recursive", "--quiet", action="fetch the submodules of")  # fmt: skip
    return commit


def project_root(source: GitSource, checkout_dir: Path) -> Path:
    """The folder of the project inside a checkout (``#subdirectory=``)."""
    root = checkout_dir / source.subdirectory if source.subdirectory else checkout_dir
    if not root.is_dir() or not os.path.realpath(root).startswith(os.path.realpath(checkout_dir)):
        msg = f"{redact(source.url)} has no folder {source.subdirectory!r}."
        raise ResolutionError(msg, hint="Check #subdirectory= in the requirement.")
    return root
