"""Images in and out of an engine: ``docker save`` of a runtime image, ``docker load`` of one
nativebuild wrote. The Protocol an engine implements for it, and what its replies mean.

:class:`nativebuild.engine.docker.DockerRunner` implements it; the tests' fakes too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from nativebuild.engine.runner import ImageInfo
from nativebuild.errors import ContainerError


@runtime_checkable
class ImageStore(Protocol):
    def image_id(self, image: str, *, platform: str | None) -> str: ...

    def local_image(self, image: str) -> ImageInfo | None: ...

    def save_image(self, image: str) -> Iterator[bytes]:
        """The image as ``docker save`` streams it."""
        ...

    def load_image(self, data: Iterable[bytes]) -> tuple[str, ...]:
        """``docker load`` of a docker-archive stream; the engine's messages."""
        ...


def load_messages(replies: Iterable[Mapping[str, object]]) -> tuple[str, ...]:
    """The lines ``docker load`` answered; an error among them (the engine reports failures
    inside a 200 response) raises ContainerError."""
    lines = []
    for reply in replies:
        detail = reply.get("errorDetail")
        error = reply.get("error") or (detail.get("message") if isinstance(detail, dict) else None)
        if error:
            msg = f"The engine refused to load the image: {error}"
            raise ContainerError(msg, hint="Check the engine's free disk space, then build again.")
        text = str(reply.get("stream", "")).strip()
        if text:
            lines.append(text)
    return tuple(lines)
