"""Hash-checking mode (pip's rule, applied after any resolver): once a requirement carries a
``--hash``, or --require-hashes is given, every pinned file needs a sha256 of its own package."""

from __future__ import annotations

from pathlib import Path

import pytest

from nativebuild.errors import ResolutionError
from nativebuild.inputs.requirements import RequirementSet, parse_requirements_text
from nativebuild.pins import LocalPin, Pin, Resolution
from nativebuild.resolve.hashes import allowed_hashes, check_hashes

SIX = "a" * 64
IDNA = "b" * 64
OTHER = "c" * 64


def parse(text: str) -> RequirementSet:
    def no_includes(path: Path) -> str:
        raise FileNotFoundError(path)

    return parse_requirements_text(
        text, origin="requirements.txt", base_dir=Path("/p"), read_file=no_includes, env={}
    )


def pin(name: str, sha256: str, version: str = "1.0") -> Pin:
    filename = f"{name}-{version}-py3-none-any.whl"
    return Pin(
        name=name, version=version, filename=filename, url=f"https://x/{filename}", sha256=sha256
    )


def pins(*items: Pin) -> Resolution:
    return Resolution(pins=items)


def test_every_pin_matching_its_own_hash_passes() -> None:
    requirements = parse(f"six==1.0 --hash=sha256:{SIX}\nidna==1.0 --hash=sha256:{IDNA}\n")
    check_hashes(pins(pin("six", SIX), pin("idna", IDNA)), requirements)


def test_a_dependency_without_a_hash_is_refused_by_name() -> None:
    """idna came in as a dependency of a hashed requirement: hash-checking mode refuses it."""
    requirements = parse(f"six==1.0 --hash=sha256:{SIX}\n")
    with pytest.raises(ResolutionError) as caught:
        check_hashes(pins(pin("six", SIX), pin("idna", IDNA, "3.6")), requirements)
    assert str(caught.value) == (
        "idna 3.6 has no sha256 --hash in the requirements, which use hashes."
    )
    assert caught.value.hint is not None
    assert "dependencies included" in caught.value.hint


def test_require_hashes_alone_refuses_a_requirement_without_one() -> None:
    requirements = parse("--require-hashes\nsix==1.0\n")
    assert requirements.require_hashes
    with pytest.raises(ResolutionError, match=r"six 1\.0 has no sha256 --hash"):
        check_hashes(pins(pin("six", SIX)), requirements)


def test_only_sha256_counts_another_algorithm_is_no_hash() -> None:
    requirements = parse(f"six==1.0 --hash=sha512:{'d' * 128}\n")
    assert requirements.require_hashes
    assert allowed_hashes(requirements) == {"six": set()}
    with pytest.raises(ResolutionError, match=r"six 1\.0 has no sha256 --hash"):
        check_hashes(pins(pin("six", SIX)), requirements)


def test_a_file_matching_none_of_its_hashes_is_refused() -> None:
    requirements = parse(f"six==1.0 --hash=sha256:{SIX} --hash=sha256:{OTHER}\n")
    check_hashes(pins(pin("six", OTHER)), requirements)  # any of them will do
    with pytest.raises(ResolutionError) as caught:
        check_hashes(pins(pin("six", IDNA)), requirements)
    assert str(caught.value) == (
        f"six-1.0-py3-none-any.whl has sha256 {IDNA}, which none of its --hash values match."
    )
    assert caught.value.hint == "Check the hashes pinned in the requirements."


def test_a_hash_of_another_package_does_not_vouch_for_this_one() -> None:
    requirements = parse(f"six==1.0 --hash=sha256:{SIX}\nidna==1.0 --hash=sha256:{IDNA}\n")
    with pytest.raises(ResolutionError, match="none of its --hash values match"):
        check_hashes(pins(pin("six", IDNA)), requirements)


def test_hashes_of_one_package_over_several_lines_add_up() -> None:
    requirements = parse(f"six==1.0 --hash=sha256:{SIX}\nsix --hash=sha256:{OTHER}\n")
    assert allowed_hashes(requirements) == {"six": {SIX, OTHER}}


def test_nothing_is_checked_outside_hash_checking_mode() -> None:
    check_hashes(pins(pin("six", SIX)), parse("six==1.0\n"))
    check_hashes(pins(pin("six", SIX)), None)  # a lock file: its own hashes were checked


# --- local sources: a folder is the user's code, a git tree is pinned by its commit -----------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def local_pin(name: str, sha256: str, kind: str) -> LocalPin:
    return LocalPin(pin=pin(name, sha256), kind=kind, origin="requirements.txt:1")


@pytest.mark.parametrize("kind", ["folder", "git"])
def test_a_local_tree_needs_no_hash_but_a_local_file_does(kind: str) -> None:
    requirements = parse(f"--require-hashes\nsix==1.0 --hash=sha256:{SIX}\n")
    tree = local_pin("acme", OTHER, kind)
    # The tree comes first: the pins after it are still checked.
    check_hashes(pins(tree.pin, pin("six", SIX)), requirements, [tree])
    with pytest.raises(ResolutionError, match=r"idna 1\.0 has no sha256 --hash"):
        check_hashes(pins(tree.pin, pin("idna", IDNA)), requirements, [tree])
    wheel = local_pin("acme", OTHER, "file")
    with pytest.raises(ResolutionError, match=r"acme 1\.0 has no sha256 --hash"):
        check_hashes(pins(wheel.pin, pin("six", SIX)), requirements, [wheel])


def test_a_git_requirement_must_name_a_full_commit_in_hash_checking_mode() -> None:
    lines = f"six==1.0 --hash=sha256:{SIX}\n"
    for rev in (COMMIT, COMMIT.upper()):
        check_hashes(pins(pin("six", SIX)), parse(f"acme @ git+https://x/acme@{rev}\n{lines}"))
    branch = parse(f"acme @ git+https://x/acme@main\n{lines}")
    with pytest.raises(ResolutionError) as caught:
        check_hashes(pins(pin("six", SIX)), branch)
    assert str(caught.value) == (
        "requirements.txt:1: in hash-checking mode, acme must be pinned to a commit."
    )
    assert caught.value.hint is not None
    assert "@<full commit id>" in caught.value.hint
    check_hashes(pins(pin("six", SIX)), parse("acme @ git+https://x/acme@main\nsix==1.0\n"))
