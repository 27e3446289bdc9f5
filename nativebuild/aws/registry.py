"""Push built images to a container registry over its HTTP API (OCI distribution spec), with the
credentials ``docker login`` left (:mod:`nativebuild.aws.docker_auth`). The one module that
talks to registries.

Why not ``docker push``: the engine would need the image loaded first, and it compresses every
layer again in its own way, so the registry's manifest digest would depend on the engine. Here
the tarball's blobs go as they are: the digest Lambda's ``ImageUri`` pins is the one the build
recorded, the same from any machine. Each blob is asked for first (``HEAD``) and sent only when
the registry lacks it, and a tag that already names this manifest is left alone, so a second
push of the same image sends nothing.

``{arch}`` and ``{runtime}`` in ``--image`` are replaced, as ``--function`` does: Lambda takes
one architecture per image (it does not follow an index), so each architecture needs its own tag.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence

from nativebuild.archive.budget import human
from nativebuild.archive.image import MANIFEST_MEDIA_TYPE
from nativebuild.archive.image_archive import ImageArchive, open_image_archive
from nativebuild.aws.docker_auth import Credentials, credentials_for
from nativebuild.aws.publish_plan import ManifestArchive, Outcome, PublishResult
from nativebuild.errors import ConfigError, PublishError
from nativebuild.reporting import NullReporter, Reporter

TIMEOUT_S = 300
_REGISTRY_RE = re.compile(
    r"(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+)(?::[0-9]+)?"
)
_REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_LOCAL_HOSTS = ("localhost", "127.", "[::1]")
_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, application/vnd.docker.distribution.manifest.v2+json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        registry, slash, rest = text.strip().partition("/")
        repository, colon, tag = rest.rpartition(":")
        named = "." in registry or ":" in registry or registry == "localhost"
        if not (slash and colon and named and _REGISTRY_RE.fullmatch(registry)
                and _REPOSITORY_RE.fullmatch(repository) and _TAG_RE.fullmatch(tag)):  # fmt: skip
            msg = f"Invalid --image {text!r}: expected REGISTRY/REPOSITORY:TAG."
            hint = "For example 123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:{arch}."
            raise ConfigError(msg, hint=hint)
        return cls(registry=registry, repository=repository, tag=tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    def pinned(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"


def image_targets(
    archives: Sequence[ManifestArchive], template: str
) -> list[tuple[ManifestArchive, ImageRef]]:
    """Each image archive of the manifest with where it goes; two different images may not
    share a tag."""
    images = [a for a in archives if a.kind == "image"]
    if not images:
        msg = "--image is given, but the manifest has no image."
        raise ConfigError(msg, hint="Build with --kind image.")
    pairs = []
    seen: dict[str, ManifestArchive] = {}
    for archive in images:
        rendered = template.replace("{arch}", archive.architecture)
        ref = ImageRef.parse(rendered.replace("{runtime}", archive.runtime))
        first = seen.setdefault(str(ref), archive)
        if first is not archive and first.sha256 != archive.sha256:
            msg = f"{first.file} and {archive.file} would both be pushed as {ref}."
            raise ConfigError(msg, hint="Put {arch} (and {runtime}) in --image.")
        pairs.append((archive, ref))
    return pairs


@dataclasses.dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


Body = Callable[[], Iterable[bytes]]  # called again when a request is retried after auth


class RegistryClient:
    """One registry: requests with docker's credentials, answering its auth challenges
    (Basic, or a Bearer token from its token service)."""

    def __init__(
        self,
        registry: str,
        *,
        env: Mapping[str, str],
        credentials: Callable[[str, Mapping[str, str]], Credentials | None] = credentials_for,
    ) -> None:
        self.registry = registry
        local = registry.startswith(_LOCAL_HOSTS)
        self.base = f"{'http' if local else 'https'}://{registry}"
        self._env = env
        self._lookup = credentials
        self._credentials: Credentials | None = None
        self._looked_up = False
        self._authorization: str | None = None
        self.bytes_sent = 0

    def _creds(self) -> Credentials | None:
        if not self._looked_up:
            self._credentials = self._lookup(self.registry, self._env)
            self._looked_up = True
        return self._credentials

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: Body | None
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.netloc, timeout=TIMEOUT_S, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT_S)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, target, body=body() if body else None, headers=dict(headers))
            reply = connection.getresponse()
            data = reply.read()
        except (OSError, http.client.HTTPException) as err:
            msg = f"Cannot reach the registry {self.registry} ({method} {parts.path}): {err}."
            hint = "Check the registry's address and your network (a proxy?)."
            raise PublishError(msg, hint=hint) from err
        finally:
            connection.close()
        return Response(
            status=reply.status, headers={k.lower(): v for k, v in reply.getheaders()}, body=data
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        scope: str,
    ) -> Response:
        """``path`` (or an absolute URL the registry gave) with auth: on a 401 the challenge
        is answered once and the request sent again."""
        url = urllib.parse.urljoin(self.base, path)
        sent = dict(headers or {})
        if self._authorization:
            sent["Authorization"] = self._authorization
        response = self._send(method, url, sent, body)
        if response.status != 401:
            return response
        self._authorization = self._answer(response.headers.get("www-authenticate", ""), scope)
        response = self._send(method, url, {**sent, "Authorization": self._authorization}, body)
        if response.status == 401:
            msg = f"The registry {self.registry} refused the credentials for {scope}."
            raise PublishError(msg, hint=f"Run `docker login {self.registry}` again.")
        return response

    def _answer(self, challenge: str, scope: str) -> str:
        creds = self._creds()
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if creds is None or creds.identity_token:
                msg = f"The registry {self.registry} asks for a login, and docker has none for it."
                raise PublishError(msg, hint=f"Run `docker login {self.registry}` first.")
            pair = f"{creds.username}:{creds.secret}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if scheme != "bearer":
            msg = f"The registry {self.registry} asks for an unknown kind of auth: {challenge[:60]!r}."
            raise PublishError(msg)
        params = dict(_PARAM_RE.findall(challenge))
        if "realm" not in params:
            msg = f"The registry {self.registry} asks for a token without saying where to get one."
            raise PublishError(msg)
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        headers = {}
        if creds is not None and creds.identity_token:
            form = {**query, "grant_type": "refresh_token", "refresh_token": creds.secret,
                    "client_id": "nativebuild"}  # fmt: skip
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            reply = self._send("POST", params["realm"], headers, lambda: [body])
        else:
            if creds is not None:
                pair = f"{creds.username}:{creds.secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            url = f"{params['realm']}?{urllib.parse.urlencode(query)}"
            reply = self._send("GET", url, headers, None)
        try:
            document = json.loads(reply.body) if reply.status == 200 else {}
        except ValueError:
            document = {}
        token = document.get("token") or document.get("access_token")
        if not token:
            msg = f"The registry {self.registry}'s token service refused (HTTP {reply.status})."
            raise PublishError(msg, hint=f"Run `docker login {self.registry}` again.")
        return f"Bearer {token}"

    # The few calls a push needs.

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        reply = self.request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": _ACCEPT},
            scope=f"repository:{repository}:pull,push",
        )  # fmt: skip
        if reply.status == 404:
            return None
        self._expect(reply, (200,), f"ask for {repository}:{tag}")
        return reply.headers.get("docker-content-digest")

    def has_blob(self, repository: str, digest: str) -> bool:
        reply = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull,push"
        )
        if reply.status == 404:
            return False
        self._expect(reply, (200, 307), f"ask for the blob {digest}")
        return True

    def upload_blob(self, repository: str, digest: str, size: int, chunks: Body) -> None:
        scope = f"repository:{repository}:pull,push"
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        self._expect(started, (202,), f"start uploading {digest}")
        location = started.headers.get("location", "")
        separator = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        done = self.request(
            "PUT", f"{location}{separator}digest={digest}", headers=headers, body=chunks,
            scope=scope,
        )  # fmt: skip
        self._expect(done, (201,), f"upload {digest}")
        self.bytes_sent += size

    def put_manifest(self, repository: str, tag: str, manifest: bytes, media_type: str) -> str:
        headers = {"Content-Type": media_type, "Content-Length": str(len(manifest))}
        reply = self.request(
            "PUT", f"/v2/{repository}/manifests/{tag}", headers=headers,
            body=lambda: [manifest], scope=f"repository:{repository}:pull,push",
        )  # fmt: skip
        self._expect(reply, (201,), f"tag {repository}:{tag}")
        self.bytes_sent += len(manifest)
        return reply.headers.get("docker-content-digest", "")

    def _expect(self, reply: Response, statuses: tuple[int, ...], action: str) -> None:
        if reply.status in statuses:
            return
        detail = reply.body.decode(errors="replace").strip()[:300]
        msg = f"The registry {self.registry} would not {action} (HTTP {reply.status}): {detail}"
        hint = (
            "403: your login may not push to this repository (ECR: ecr:PutImage, "
            "ecr:InitiateLayerUpload, ...); 404: create the repository first."
        )
        raise PublishError(msg, hint=hint)


def push_image(
    client: RegistryClient,
    archive: ManifestArchive,
    ref: ImageRef,
    *,
    dry_run: bool,
    reporter: Reporter,
) -> Outcome:
    """Push one image; an outcome whose ``arn`` is the digest-pinned reference to deploy."""
    if archive.manifest_digest is None:
        msg = f"{archive.file} is not an image this nativebuild version recorded."
        raise ConfigError(msg, hint="Build it again with --kind image.")
    digest = archive.manifest_digest
    tarball: ImageArchive = open_image_archive(archive.path)
    manifest = tarball.read(digest)
    if f"sha256:{hashlib.sha256(manifest).hexdigest()}" != digest:
        msg = f"{archive.file} does not hold the manifest {digest} its build recorded."
        raise ConfigError(msg, hint="Build it again: the manifest and the tarball go together.")
    document = json.loads(manifest)
    blobs = [document["config"], *document["layers"]]

    def outcome(action: str, reason: str) -> Outcome:
        return Outcome(
            archive=archive.file, target=f"image:{ref}", arn=ref.pinned(digest), version=ref.tag,
            code_sha256=digest, reason=reason, action=action,
        )  # fmt: skip

    if client.manifest_digest(ref.repository, ref.tag) == digest:
        return outcome("skip", f"{ref} is this image already")
    missing = [b for b in blobs if not client.has_blob(ref.repository, b["digest"])]
    size = sum(int(b["size"]) for b in missing)
    summary = f"{len(missing)} of {len(blobs)} blobs sent ({human(size)}), the rest already there"
    if dry_run:
        return outcome("push", summary.replace("sent", "to send"))
    for blob in missing:
        blob_digest, blob_size = str(blob["digest"]), int(blob["size"])
        reporter.detail(f"uploading {blob_digest[:19]} ({human(blob_size)}) to {ref}")
        client.upload_blob(
            ref.repository, blob_digest, blob_size, functools.partial(tarball.stream, blob_digest)
        )
    answered = client.put_manifest(ref.repository, ref.tag, manifest, MANIFEST_MEDIA_TYPE)
    if answered and answered != digest:
        msg = f"The registry stored {ref} as {answered}, not {digest}."
        raise PublishError(msg, hint="The registry rewrote the manifest; report this.")
    return outcome("push", summary)


def push_images(
    archives: Sequence[ManifestArchive],
    template: str,
    *,
    env: Mapping[str, str],
    dry_run: bool = False,
    reporter: Reporter | None = None,
    clients: Callable[[str], RegistryClient] | None = None,
) -> PublishResult:
    """``publish --image``: every image of the manifest, each to its registry."""
    reporter = reporter or NullReporter()
    made: dict[str, RegistryClient] = {}

    def client(registry: str) -> RegistryClient:
        if registry not in made:
            made[registry] = clients(registry) if clients else RegistryClient(registry, env=env)
        return made[registry]

    pushed: list[Outcome] = []
    skipped: list[Outcome] = []
    for archive, ref in image_targets(archives, template):
        reporter.step(f"Pushing {archive.file} to {ref}")
        result = push_image(client(ref.registry), archive, ref, dry_run=dry_run, reporter=reporter)
        (skipped if result.action == "skip" else pushed).append(result)
    return PublishResult(published=tuple(pushed), skipped=tuple(skipped), dry_run=dry_run)
