"""What nativebuild asks of an engine that speaks the Docker API (Docker, Podman, a remote
engine): the API version it needs, and the hints for an engine that does not answer.
"""

from __future__ import annotations

from nativebuild.errors import (
    ContainerError,
    DockerUnavailableError,
    ImageNotFoundError,
    NativebuildError,
)

# Creating a container with platform= needs API 1.41 (Docker Engine 20.10).
MIN_PLATFORM_API = (1, 41)
DEFAULT_HOST = "unix:///var/run/docker.sock"

START_HINT = (
    "Start a Docker engine: `sudo systemctl start docker` (Linux with systemd), `sudo dockerd &` "
    "(no init system), or open Docker Desktop (macOS, Windows). If `docker info` works but "
    'nativebuild does not, your docker CLI uses a context: export DOCKER_HOST="$(docker context '
    "inspect --format '{{.Endpoints.docker.Host}}')\"."
)
PERMISSION_HINT = (
    "Your user may not use the Docker socket: add it to the `docker` group "
    "(`sudo usermod -aG docker $USER`, then log in again), or point DOCKER_HOST at a rootless engine."
)


def api_version(text: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def platform_api_error(
    engine: str, version: str, platform: str | None
) -> DockerUnavailableError | None:
    """Why an engine speaking API ``version`` cannot run a container for ``platform``."""
    if platform is None or api_version(version) >= MIN_PLATFORM_API:
        return None
    wanted = ".".join(map(str, MIN_PLATFORM_API))
    msg = (
        f"The Docker engine at {engine} speaks API {version}, but choosing a "
        f"platform ({platform}) needs API {wanted} or newer."
    )
    return DockerUnavailableError(msg, hint="Upgrade Docker Engine to 20.10 or newer.")


def engine_machine(architecture: str) -> str:
    """An engine's ``Architecture`` as ``uname -m`` says it: ``amd64`` → ``x86_64``."""
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(architecture, architecture)


def api_error(
    action: str, image: str, detail: str, pulling: bool, not_found: bool
) -> NativebuildError:
    """The error for an engine that answered, but refused ``action``."""
    if pulling:
        msg = f"Image {image!r} is not available locally and could not be pulled: {detail}"
    elif not_found:
        msg = f"Image {image!r} was not found (trying to {action}): {detail}"
    else:
        about = f" (image {image!r})" if image else ""
        return ContainerError(f"Docker could not {action}{about}: {detail}")
    hint = (
        f"Check the image name; build it locally, `docker pull {image}` from a "
        "registry you can reach, or pass --build-image to use another image."
    )
    return ImageNotFoundError(msg, hint=hint)


def unreachable_error(engine: str, action: str | None, detail: str) -> DockerUnavailableError:
    """The error for an engine that does not answer (``action`` None: while connecting)."""
    doing = f" (trying to {action})" if action else ""
    msg = f"Cannot reach the Docker engine at {engine}{doing}: {detail}"
    hint = PERMISSION_HINT if "Permission denied" in detail else START_HINT
    return DockerUnavailableError(msg, hint=hint)
