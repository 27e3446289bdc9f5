"""Scripts that run inside containers, with the target's Python (3.9 or newer): standard
library only, nothing imported from nativebuild, so each one can be mounted into a container on
its own. :func:`script` locates one on the host; where it is mounted inside a container is up to
the code that starts that container.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["script"]

_HERE = Path(__file__).resolve().parent


def script(name: str) -> Path:
    """The host path of the driver ``name`` (``"build_wheels"`` -> ``.../build_wheels.py``)."""
    path = _HERE / f"{name}.py"
    if not path.is_file():
        msg = f"nativebuild is incomplete: the container script {path} is missing"
        raise FileNotFoundError(msg)
    return path
