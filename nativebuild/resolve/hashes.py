"""pip's hash-checking mode, applied to whatever chose the files (uv on the host, pip in the
build image, or a lock file): once the requirements carry a ``--hash`` (or --require-hashes),
every pinned file, dependencies included, must match one of its own package's sha256 hashes."""

from __future__ import annotations

from nativebuild.errors import ResolutionError
from nativebuild.inputs.requirements import RequirementSet
from nativebuild.pins import Resolution

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


def check_hashes(resolution: Resolution, requirements: RequirementSet | None) -> None:
    """Raise ResolutionError for the first pin without a sha256 ``--hash`` of its own, or whose
    file matches none of them; nothing to check outside hash-checking mode."""
    if requirements is None or not requirements.require_hashes:
        return
    allowed = allowed_hashes(requirements)
    for pin in resolution.pins:
        hashes = allowed.get(pin.name)
        if not hashes:
            msg = f"{pin.name} {pin.version} has no sha256 --hash in the requirements, which use hashes."
            raise ResolutionError(msg, hint=_MISSING_HINT)
        if pin.sha256 not in hashes:
            msg = f"{pin.filename} has sha256 {pin.sha256}, which none of its --hash values match."
            raise ResolutionError(msg, hint="Check the hashes pinned in the requirements.")
