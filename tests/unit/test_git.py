"""Git requirements: URLs as pip reads them, revisions to commits, and what is asked of git
(a GitRunner that answers for a server: no git server needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from nativebuild.errors import DownloadError, ResolutionError
from nativebuild.inputs.git import (
    GitResult,
    GitSource,
    Revision,
    checkout,
    is_commit,
    parse_git_url,
    read_ls_remote,
    resolve_revision,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"
TAG_OBJECT = "f" * 40


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git+https://github.com/o/p", GitSource(url="https://github.com/o/p", rev=None)),
        ("git+https://github.com/o/p.git@v1.2", GitSource(url="https://github.com/o/p.git", rev="v1.2")),
        ("git+ssh://git@h:2222/o/p.git@main", GitSource(url="ssh://git@h:2222/o/p.git", rev="main")),
        (f"git+file:///srv/r@{COMMIT}", GitSource(url="file:///srv/r", rev=COMMIT)),
        ("git+https://u:t@h/o/p@feature/x#subdirectory=py/pkg&egg=p",
         GitSource(url="https://u:t@h/o/p", rev="feature/x", subdirectory="py/pkg")),
        ("git+git://h/o/p", GitSource(url="git://h/o/p", rev=None)),
    ],
)  # fmt: skip
def test_parse_git_url(url: str, expected: GitSource) -> None:
    assert parse_git_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("git+git@github.com:o/p.git", "scp-like"),
        ("git+ftp://h/o/p", "not a git URL"),
        ("git+https://h/o/p@", "no revision"),
        ("git+https://h", "names no repository"),
        ("git+https://h/o/p#subdirectory=/etc", "must stay inside"),
        ("git+https://u:s3cr3t@h/o/p#subdirectory=../x", "must stay inside"),
    ],
)
def test_bad_git_urls_say_why_without_credentials(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        parse_git_url(url)
    assert "s3cr3t" not in str(info.value)


def test_public_and_pinned_urls_never_carry_credentials() -> None:
    source = parse_git_url("git+https://user:s3cr3t@h/o/p@main#subdirectory=py")
    assert source.public_url == "https://h/o/p"
    assert source.pinned_url(COMMIT) == f"git+https://h/o/p@{COMMIT}#subdirectory=py"
    assert source.secrets() == ("s3cr3t",)


def test_is_commit() -> None:
    assert is_commit(COMMIT)
    assert is_commit(COMMIT.upper())
    assert is_commit("a" * 64)  # sha256 repositories
    assert not is_commit(COMMIT[:12])
    assert not is_commit("main")
    assert not is_commit(None)


LS_REMOTE = f"""\
{COMMIT}\tHEAD
{COMMIT}\trefs/heads/main
{OTHER}\trefs/heads/v1
{TAG_OBJECT}\trefs/tags/v1
{OTHER}\trefs/tags/v1^{{}}
{COMMIT}\trefs/tags/light
{OTHER}\trefs/pull/7/head
"""


@pytest.mark.parametrize(
    ("rev", "expected"),
    [
        (None, Revision(commit=COMMIT, kind="default")),
        ("main", Revision(commit=COMMIT, kind="branch")),
        ("v1", Revision(commit=OTHER, kind="branch")),  # a branch wins over a tag, as in git
        ("light", Revision(commit=COMMIT, kind="tag")),
        ("refs/pull/7/head", Revision(commit=OTHER, kind="ref")),
        ("nope", None),
    ],
)
def test_read_ls_remote(rev: str | None, expected: Revision | None) -> None:
    assert read_ls_remote(LS_REMOTE, rev) == expected


def test_an_annotated_tag_is_its_commit_not_the_tag_object() -> None:
    text = f"{TAG_OBJECT}\trefs/tags/v2\n{OTHER}\trefs/tags/v2^{{}}\n"
    assert read_ls_remote(text, "v2") == Revision(commit=OTHER, kind="tag")


class ScriptedGit:
    """Answers each git command from ``answer`` and records it."""

    def __init__(self, answer: Callable[[list[str]], GitResult]) -> None:
        self.answer = answer
        self.calls: list[list[str]] = []

    def run(self, args: Sequence[str], *, cwd: Path | None = None) -> GitResult:
        self.calls.append(list(args))
        return self.answer(list(args))


def ok(stdout: str = "") -> GitResult:
    return GitResult(returncode=0, stdout=stdout, stderr="")


def test_a_full_commit_needs_no_network() -> None:
    git = ScriptedGit(lambda _: pytest.fail("no git command for a full commit id"))
    source = GitSource(url="https://h/o/p", rev=COMMIT.upper())
    assert resolve_revision(source, git) == Revision(commit=COMMIT, kind="commit")


def test_a_branch_is_asked_of_the_remote() -> None:
    git = ScriptedGit(lambda _: ok(LS_REMOTE))
    revision = resolve_revision(GitSource(url="https://u:t@h/o/p", rev="main"), git)
    assert revision == Revision(commit=COMMIT, kind="branch")
    assert git.calls == [["ls-remote", "--", "https://u:t@h/o/p"]]


def test_a_missing_branch_and_an_unreachable_remote_are_clear_errors() -> None:
    with pytest.raises(ResolutionError, match="has no branch or tag 'nope'"):
        resolve_revision(
            GitSource(url="https://h/o/p", rev="nope"), ScriptedGit(lambda _: ok(LS_REMOTE))
        )
    failed = GitResult(
        returncode=128, stdout="",
        stderr="fatal: Authentication failed for 'https://me:s3cr3t@h/o/p/'\n",
    )  # fmt: skip
    with pytest.raises(DownloadError) as info:
        resolve_revision(
            GitSource(url="https://me:s3cr3t@h/o/p", rev="main"), ScriptedGit(lambda _: failed)
        )
    assert "s3cr3t" not in str(info.value)
    assert "Authentication failed" in str(info.value)
    assert "ssh agent, credential helper or ~/.netrc" in str(info.value.hint)


def test_an_abbreviated_commit_is_left_to_the_full_fetch() -> None:
    assert (
        resolve_revision(
            GitSource(url="https://h/o/p", rev=COMMIT[:10]), ScriptedGit(lambda _: ok(LS_REMOTE))
        )
        is None
    )


def test_git_missing_says_to_install_it() -> None:
    missing = GitResult(returncode=127, stdout="", stderr="git is not installed")
    with pytest.raises(DownloadError) as info:
        resolve_revision(GitSource(url="https://h/o/p", rev="main"), ScriptedGit(lambda _: missing))
    assert "Install git" in str(info.value.hint)


def test_checkout_fetches_only_the_commit_where_the_server_allows(tmp_path: Path) -> None:
    def answer(args: list[str]) -> GitResult:
        return ok(COMMIT + "\n") if "rev-parse" in args else ok()

    git = ScriptedGit(answer)
    source = GitSource(url="https://h/o/p", rev="main")
    commit = checkout(source, Revision(commit=COMMIT, kind="branch"), tmp_path, git)
    assert commit == COMMIT
    verbs = [call[2] for call in git.calls]
    assert verbs == ["init", "fetch", "rev-parse", "-c"]  # -c advice...: the checkout
    assert git.calls[1][-1] == COMMIT
    assert "--depth" in git.calls[1]
    assert git.calls[2][-1] == "FETCH_HEAD"


def test_checkout_falls_back_to_every_branch_and_tag(tmp_path: Path) -> None:
    def answer(args: list[str]) -> GitResult:
        if "--depth" in args:
            return GitResult(returncode=128, stdout="", stderr="not our ref")
        return ok(COMMIT + "\n") if "rev-parse" in args else ok()

    git = ScriptedGit(answer)
    checkout(
        GitSource(url="https://h/o/p", rev=None),
        Revision(commit=COMMIT, kind="default"),
        tmp_path,
        git,
    )
    full = [call for call in git.calls if "fetch" in call and "--depth" not in call]
    assert full
    assert "+refs/heads/*:refs/remotes/origin/*" in full[0]
    assert git.calls[-2][-1] == f"{COMMIT}^{{commit}}"


def test_checkout_refuses_a_commit_other_than_asked(tmp_path: Path) -> None:
    git = ScriptedGit(lambda args: ok(OTHER + "\n") if "rev-parse" in args else ok())
    with pytest.raises(DownloadError, match="asked for commit"):
        checkout(
            GitSource(url="https://h/o/p", rev=COMMIT),
            Revision(commit=COMMIT, kind="commit"),
            tmp_path,
            git,
        )
