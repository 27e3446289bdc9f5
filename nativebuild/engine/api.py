"""What nativebuild asks of an engine that speaks the Docker API (Docker, Podman, a remote
engine): the API version it needs, and the hints for an engine that does not answer.
"""

from __future__ import annotations

from nativebuild.errors import DockerUnavailableError

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
