"""Run commands in containers through the Docker API: the only module that imports ``docker``.

:class:`DockerRunner` implements :class:`nativebuild.engine.runner.ContainerRunner` with the
docker SDK (Docker, Podman's Docker API, remote engines). ``docker`` is imported lazily: a build
that needs no container never loads the SDK or asks an engine anything.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nativebuild.engine.api import (
    DEFAULT_HOST,
    api_error,
    engine_machine,
    platform_api_error,
    unreachable_error,
)
from nativebuild.engine.image_store import load_messages
from nativebuild.engine.local_api import LocalEngineAPI, load_over_socket, quick_image_id
from nativebuild.engine.orphans import OWNER_LABEL, orphaned, owner
from nativebuild.engine.runner import (
    LOG_TAIL_LINES,
    ContainerResult,
    ContainerSpec,
    EngineInfo,
    ImageInfo,
    architecture_mismatch,
    host_user,
    iter_lines,
)
from nativebuild.engine.transfer import pack_inputs, unpack_output
from nativebuild.errors import ContainerError, ImageNotFoundError, NativebuildError
from nativebuild.redact import redact_secrets

if TYPE_CHECKING:
    from types import TracebackType

    from docker import DockerClient
    from docker.models.containers import Container
    from docker.models.images import Image

    from nativebuild.reporting import Reporter

LABEL = "org.nativebuild"


class _DockerErrors:
    """Map every docker SDK failure onto a NativebuildError; the one place that knows them.

    A class rather than @contextmanager: its ``__exit__`` never swallows, and type checkers
    can see that.
    """

    def __init__(
        self,
        action: str,
        *,
        engine: str,
        image: str | None = None,
        secrets: Iterable[str] = (),
        pulling: bool = False,
        connecting: bool = False,
    ) -> None:
        self.action = action
        self.engine = engine
        self.image = image
        self.secrets = tuple(secrets)
        self.pulling = pulling
        self.connecting = connecting  # any failure means the engine does not answer

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        mapped = None if exc is None else self._translate(exc)
        if mapped is not None:
            raise mapped from exc

    def _translate(self, err: BaseException) -> NativebuildError | None:
        import docker.errors

        # APIError first: it is also a requests error, hence an OSError.
        if isinstance(err, docker.errors.APIError) and not self.connecting:
            detail = redact_secrets(str(err.explanation or err), self.secrets)
            not_found = isinstance(err, docker.errors.ImageNotFound)
            return api_error(self.action, self.image or "", detail, self.pulling, not_found)
        if isinstance(err, docker.errors.DockerException | OSError):
            # requests/urllib3 connection errors, FileNotFoundError for a missing socket, ...
            detail = redact_secrets(str(err), self.secrets)
            return unreachable_error(self.engine, None if self.connecting else self.action, detail)
        return None  # not docker's: KeyboardInterrupt, our own errors, bugs


class DockerRunner:
    """ContainerRunner on a Docker engine. The client is made on first use, never before."""

    def __init__(
        self,
        client_factory: Callable[[], DockerClient] | None = None,
        *,
        keep_containers: bool = False,
        docker_host: str | None = None,
        reporter: Reporter | None = None,
        copy_files: bool = False,
        network_mode: str | None = None,
        local_api: LocalEngineAPI | None = None,
    ) -> None:
        """``client_factory`` defaults to ``docker.from_env``, looked up when first needed.

        ``keep_containers`` (NATIVEBUILD_KEEP_CONTAINER=1) leaves finished containers for
        debugging. ``docker_host`` (DOCKER_HOST) only names the engine in messages.
        ``reporter`` hears about image pulls, which can take minutes. ``copy_files`` sends
        mounts through the API instead of binding host paths (a remote engine cannot see
        them); ``network_mode`` applies to every container (a builder may need "host").
        ``local_api`` answers image ids without the SDK while no client is needed yet.
        """
        self._local_api = local_api
        self.copy_files = copy_files
        self._network_mode = network_mode
        self._client_factory = client_factory
        self._client: DockerClient | None = None
        self.keep_containers = keep_containers
        self._engine = (
            f"DOCKER_HOST={docker_host}"
            if docker_host
            else f"DOCKER_HOST, or the default socket {DEFAULT_HOST}"
        )
        self._reporter = reporter
        self.containers_started = 0
        self._active: set[str] = set()  # containers running now, for cancel()
        self._active_lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, reporter: Reporter | None = None) -> DockerRunner:
        """A runner configured from ``env`` rather than ``os.environ``: DOCKER_HOST,
        DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and NATIVEBUILD_KEEP_CONTAINER."""
        environment = dict(env)

        def factory() -> DockerClient:
            import docker

            return docker.from_env(environment=environment)

        return cls(
            factory,
            keep_containers=env.get("NATIVEBUILD_KEEP_CONTAINER") == "1",
            docker_host=env.get("DOCKER_HOST"),
            reporter=reporter,
            local_api=LocalEngineAPI.from_env(env),
        )

    def check_engine(self) -> None:
        self._client_for(platform=None)

    def engine_architecture(self) -> str:
        """The engine's own machine (``x86_64``, ``aarch64``): what runs without emulation."""
        client = self._client_for(platform=None)
        with _DockerErrors("ask the engine for its architecture", engine=self._engine):
            return engine_machine(str(client.info().get("Architecture", "")))

    def cancel(self) -> None:
        """Kill and remove every container this runner has running (Ctrl-C from another
        thread): their runs then end, and nothing is left behind."""
        with self._active_lock:
            names = list(self._active)
        if not names or self._client is None:
            return
        import docker.errors

        for name in names:
            with contextlib.suppress(docker.errors.DockerException):
                self._client.containers.get(name).remove(force=True)

    def image_id(self, image: str, *, platform: str | None) -> str:
        if self._client is None and self._local_api is not None:  # the warm path: no SDK
            known = quick_image_id(self._local_api, image, platform, reporter=self._reporter)
            if known is not None:
                return known
        client = self._client_for(platform=platform)
        try:
            with _DockerErrors("inspect the image", image=image, engine=self._engine):
                found = client.images.get(image)
        except ImageNotFoundError:
            found = self._pull(client, image, platform)
        reason = architecture_mismatch(image, found.attrs.get("Architecture", ""), platform)
        if reason is not None:
            hint = (
                f"Pull or build the {platform} variant under its own tag "
                f"(`docker pull --platform {platform} ...`), or pass --build-image."
            )
            raise ImageNotFoundError(reason, hint=hint)
        if not found.id:  # pragma: no cover - the engine always reports one
            msg = f"Docker reported no id for image {image!r}."
            raise ContainerError(msg)
        return found.id

    def run(
        self,
        spec: ContainerSpec,
        *,
        reporter: Reporter,
        verbose: bool = False,  # noqa: ARG002 - every line goes to the reporter, which filters
    ) -> ContainerResult:
        import docker.types

        client = self._client_for(platform=spec.platform)
        mounts = [m for m in spec.mounts if not (self.copy_files and m.optional)]
        for mount in mounts:
            if not mount.source.exists():
                msg = f"Cannot {spec.description}: mount source {mount.source} does not exist."
                raise ContainerError(msg)
        environment = dict(spec.environment)
        guard = functools.partial(
            _DockerErrors, image=spec.image, engine=self._engine, secrets=environment.values()
        )
        name = f"nativebuild-{uuid.uuid4().hex[:12]}"
        user = spec.user if spec.user is not None else host_user()
        reporter.command(list(spec.command))
        started = time.monotonic()
        try:
            with guard(f"create the container to {spec.description}"):
                container = client.containers.create(
                    spec.image,
                    command=list(spec.command),
                    # [""] is what `docker run --entrypoint ''` sends; None keeps the image's.
                    entrypoint=list(spec.entrypoint) or [""],
                    platform=spec.platform,
                    mounts=[]
                    if self.copy_files
                    else [
                        docker.types.Mount(
                            target=m.target,
                            source=str(m.source.resolve()),
                            type="bind",
                            read_only=m.read_only,
                        )
                        for m in mounts
                    ],
                    environment=environment,
                    working_dir=spec.working_dir,
                    user=user,
                    name=name,
                    labels={LABEL: "1", OWNER_LABEL: owner()},
                    detach=True,
                    network_mode=spec.network_mode or self._network_mode,
                )
        except NativebuildError:
            raise  # the engine refused: nothing was created
        except BaseException:
            # Interrupted mid-request: the engine may have created it all the same.
            self._remove(client, name, None, reporter)
            raise
        self.containers_started += 1
        with self._active_lock:
            self._active.add(name)
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        try:
            if self.copy_files:
                with guard(f"copy the inputs to {spec.description}"):
                    data = pack_inputs([(m.source, m.target) for m in mounts], user=user)
                    container.put_archive("/", data)
            with guard(f"start the container to {spec.description}"):
                container.start()
            chunks = _guarded(
                lambda: container.logs(stream=True, follow=True),
                guard(f"read the output of the container to {spec.description}"),
            )
            for line in iter_lines(chunks):
                tail.append(line)
                reporter.output(line)  # the reporter decides what to show (-v: everything)
            with guard(f"wait for the container to {spec.description}"):
                status = container.wait()
            if self.copy_files:
                for mount in (m for m in mounts if not m.read_only):
                    with guard(f"copy back the outputs to {spec.description}"):
                        chunks, _ = container.get_archive(mount.target)
                        unpack_output(chunks, mount.source)
        finally:
            self._remove(client, name, container, reporter)
        return ContainerResult(
            exit_code=int(status["StatusCode"]),
            log_tail=tuple(tail),
            duration_s=time.monotonic() - started,
        )

    # Images: `nativebuild images` and `nativebuild doctor`.

    def engine_info(self) -> EngineInfo:
        client = self._client_for(platform=None)
        with _DockerErrors("ask the engine for its version", engine=self._engine):
            version, info = client.version(), client.info()
        return EngineInfo.from_api(version, info, api_version=str(client.api.api_version))

    def local_image(self, image: str) -> ImageInfo | None:
        """The local image ``image``, or None when there is none; never pulls. A local engine
        is asked over its socket (no SDK); should that fail, the SDK asks and explains."""
        if self._local_api is not None:
            with contextlib.suppress(OSError):
                found = self._local_api.image(image)
                return None if found is None else ImageInfo.from_attrs(found)
        import docker.errors

        client = self._client_for(platform=None)
        with _DockerErrors("inspect the image", image=image, engine=self._engine):
            try:
                return ImageInfo.from_attrs(client.images.get(image).attrs)
            except docker.errors.ImageNotFound:
                return None

    def list_images(self, prefix: str) -> list[ImageInfo]:
        """Local images with a tag that starts with ``prefix``."""
        client = self._client_for(platform=None)
        with _DockerErrors("list images", engine=self._engine):
            images = client.images.list()
        return [
            ImageInfo.from_attrs(image.attrs)
            for image in images
            if any(tag.startswith(prefix) for tag in image.tags)
        ]

    def save_image(self, image: str) -> Iterator[bytes]:
        """``docker save IMAGE``, streamed (nativebuild.engine.image_store.ImageStore)."""
        client = self._client_for(platform=None)
        guard = _DockerErrors("save the image", image=image, engine=self._engine)
        return _guarded(lambda: client.api.get_image(image), guard)

    def load_image(self, data: Iterable[bytes]) -> tuple[str, ...]:
        """``docker load`` of a docker-archive stream; the engine's messages. A local engine
        gets the stream over its socket, without the SDK."""
        if self._local_api is not None:
            return load_over_socket(self._local_api, data, engine=self._engine)
        client = self._client_for(platform=None)
        with _DockerErrors("load an image", engine=self._engine):
            return load_messages(client.api.load_image(data))  # type: ignore[no-untyped-call]

    def registry_digest(self, image: str) -> str:
        """The digest the registry serves for ``image`` now; nothing is pulled."""
        client = self._client_for(platform=None)
        action = "ask the registry for the image's digest"
        with _DockerErrors(action, image=image, engine=self._engine):
            return str(client.images.get_registry_data(image).id)

    def build_image(
        self,
        *,
        context_dir: Path,
        tag: str,
        buildargs: Mapping[str, str],
        platform: str | None,
        reporter: Reporter,
        secrets: Iterable[str] = (),
    ) -> str:
        """Build ``context_dir``/Dockerfile with the classic builder and tag it ``tag``;
        returns the image id. The log goes to ``reporter.output``, ``secrets`` redacted."""
        client = self._client_for(platform=platform)
        hidden = tuple(secrets)
        reporter.command(
            ["docker", "build", *(["--platform", platform] if platform else []),
             *(f"--build-arg={name}" for name in sorted(buildargs)), "--tag", tag, str(context_dir)]
        )  # fmt: skip
        found: dict[str, str] = {}

        def stream() -> Iterator[bytes]:
            for chunk in client.api.build(
                path=str(context_dir), tag=tag, buildargs=dict(buildargs), platform=platform,
                decode=True, rm=True, forcerm=True, pull=False,
            ):  # fmt: skip
                if "error" in chunk:
                    found["error"] = str(chunk["error"])
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    found["id"] = str(aux["ID"])
                yield str(chunk.get("stream", "")).encode()

        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        guard = _DockerErrors(f"build image {tag}", image=tag, engine=self._engine, secrets=hidden)
        for raw in iter_lines(_guarded(stream, guard)):
            line = redact_secrets(raw, hidden)
            tail.append(line)
            reporter.output(line)
        if "error" in found:
            log = "\n".join(tail)
            msg = f"Building image {tag} failed: {redact_secrets(found['error'], hidden)}\n{log}"
            hint = (
                "The lines above end at the failing step. A package index or registry that "
                "cannot be reached usually means proxy or CA settings: see `nativebuild doctor`."
            )
            raise ContainerError(msg, hint=hint)
        built = found.get("id") or (info.id if (info := self.local_image(tag)) else "")
        if not built:  # pragma: no cover - the classic builder always reports the id
            msg = f"Building image {tag} reported no image id."
            raise ContainerError(msg)
        return built

    def _client_for(self, *, platform: str | None) -> DockerClient:
        if self._client is None:
            with _DockerErrors("connect", engine=self._engine, connecting=True):
                factory = self._client_factory
                if factory is None:
                    import docker

                    factory = docker.from_env
                client = factory()
                try:
                    client.ping()
                except BaseException:
                    client.close()
                    raise
            self._client = client
            self._reap_orphans(client)
        problem = platform_api_error(self._engine, self._client.api.api_version, platform)
        if problem is not None:
            raise problem
        return self._client

    def _pull(self, client: DockerClient, image: str, platform: str | None) -> Image:
        if self._reporter is not None:
            self._reporter.step(f"Pulling {image} for {platform or 'the engine platform'}")
        action = f"pull it for {platform}" if platform else "pull it"
        with _DockerErrors(action, image=image, engine=self._engine, pulling=True):
            return client.images.pull(image, platform=platform)

    def _reap_orphans(self, client: DockerClient) -> None:
        """Remove what killed nativebuilds on this host left behind (best effort), on first
        contact with the engine: even a build that starts no container does it."""
        import docker.errors

        reporter = self._reporter

        try:
            listed = client.containers.list(all=True, filters={"label": OWNER_LABEL})
            found = [(str(c.name), c.labels) for c in listed]
            names = orphaned(found, host=socket.gethostname())
            for name in names:
                with contextlib.suppress(docker.errors.NotFound):
                    client.containers.get(name).remove(force=True)
        except docker.errors.DockerException as err:
            if reporter is not None:
                reporter.detail(f"Could not look for containers left by killed builds: {err}")
            return
        if names and reporter is not None:
            reporter.detail(f"Removed {len(names)} container(s) left by a killed nativebuild")

    def _remove(
        self, client: DockerClient, name: str, container: Container | None, reporter: Reporter
    ) -> None:
        with self._active_lock:
            self._active.discard(name)
        if self.keep_containers:
            if container is not None:
                reporter.detail(f"Kept container {name} (remove it with `docker rm -f {name}`)")
            return
        import docker.errors

        try:
            with (
                _DockerErrors(f"remove container {name}", engine=self._engine),
                contextlib.suppress(docker.errors.NotFound),
            ):
                target = container if container is not None else client.containers.get(name)
                target.remove(force=True)
        except NativebuildError as err:
            # Never mask the build's own outcome; the label lets users prune leftovers.
            reporter.warning(f"{err} Remove it with `docker rm -f {name}`.")


def _guarded(open_stream: Callable[[], Iterable[bytes]], guard: _DockerErrors) -> Iterator[bytes]:
    # Covers opening and reading the stream, not what the consumer does with each chunk.
    with guard:
        yield from open_stream()


def remote_client_factory(host: str) -> Callable[[], DockerClient]:
    """A client of the engine at ``host`` (ssh://, tcp://, unix://), made when first needed."""

    def factory() -> DockerClient:
        import docker

        return docker.DockerClient(base_url=host, use_ssh_client=host.startswith("ssh://"))

    return factory
