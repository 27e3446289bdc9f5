"""pip's hash-checking mode, applied to whatever chose the files (uv on the host, pip in the
build image, or a lock file): once the requirements carry a ``--hash`` (or --require-hashes),
every pinned file, dependencies included, must match one of its own package's sha256 hashes."""

from __future__ import annotations

from collections.abc import Sequence

from nativebuild.errors import ResolutionError
from nativebuild.inputs.git import is_commit
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import LocalPin, Resolution

_MISSING_HINT = (
    "In hash-checking mode every package, dependencies included, needs a "
    "--hash=sha256:... (nativebuild verifies sha256)."
)


def allowed_hashes(requirements: RequirementSet) -> dict[str, set[str]]:
    """The sha256 values each package may have, by canonical name (other algorithms are not
    checked, so they allow nothing)."""
    allowed: dict[str, set[str]] = {}
    for line in requirements.requirements:
        allowed.setdefault(line.name, set()).update(
            h.removeprefix("sha256:") for h in line.hashes if h.startswith("sha256:")
        )
    return allowed


def check_hashes(
    resolution: Resolution,
    requirements: RequirementSet | None,
    local: Sequence[LocalPin] = (),
) -> None:
    """Raise ResolutionError for the first pin without a sha256 ``--hash`` of its own, or whose
    file matches none of them; nothing to check outside hash-checking mode. Hashes check
    files: a ``local`` folder is the user's own code, a git tree is pinned by its commit (which
    must then be a full commit id)."""
    if requirements is None or not requirements.require_hashes:
        return
    allowed = allowed_hashes(requirements)
    trees = {item.pin.sha256 for item in local if item.kind in ("folder", "git")}
    for line in requirements.local:
        if line.git is not None and not is_commit(line.git.rev):
            msg = f"{line.origin}: in hash-checking mode, {line.name} must be pinned to a commit."
            hint = "Write @<full commit id> after the git URL: the commit is its hash."
            raise ResolutionError(msg, hint=hint)
    for pin in resolution.pins:
        if pin.sha256 in trees:
            continue
        hashes = allowed.get(pin.name)
        if not hashes:
            msg = f"{pin.name} {pin.version} has no sha256 --hash in the requirements, which use hashes."
            raise ResolutionError(msg, hint=_MISSING_HINT)
        if pin.sha256 not in hashes:
            msg = f"{pin.filename} has sha256 {pin.sha256}, which none of its --hash values match."
            raise ResolutionError(msg, hint="Check the hashes pinned in the requirements.")
