"""What a build container gets of the index settings: environment, and read-only files.

Local sources named by the requirements file (``--find-links`` folders, ``file://`` indexes)
reach a container as their distribution files only, each mounted read-only in a folder of its
own that pip reads as find-links: never the folder itself (``-f .`` must not hand a build the
project's ``.env``), never writable. The netrc a container sees holds only the machines of the
indexes it is told to use: a git host's token in ``~/.netrc`` stays on the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import netrc
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nativebuild.index.pip_config import (
    CA_BUNDLE_IN_CONTAINER,
    NETRC_IN_CONTAINER,
    IndexSettings,
    local_path,
)
from nativebuild.index.simple_api import parse_page

LINKS_IN_CONTAINER = "/nativebuild/links"
DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


def is_distribution(name: str) -> bool:
    return name.lower().endswith(DISTRIBUTION_SUFFIXES) and not name.startswith(".")


def folder_files(folder: Path) -> list[Path]:
    """The wheels and sdists at the top of ``folder``, as pip's find-links reads it."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [path for path in entries if is_distribution(path.name) and path.is_file()]


def index_files(index_url: str) -> list[Path]:
    """The files on this machine a ``file://`` simple index (PEP 503 pages) links to."""
    root = local_path(index_url)
    if root is None or not root.is_dir():
        return []
    found: dict[Path, None] = {}
    for project in sorted(p for p in root.iterdir() if p.is_dir()):
        page = project / "index.html"
        try:
            body = page.read_bytes()
        except OSError:
            continue
        for entry in parse_page(body, page.as_uri()):
            if urlsplit(entry.url).scheme != "file":
                continue
            path = Path(unquote(urlsplit(entry.url).path))
            if is_distribution(path.name) and path.is_file():
                found[path] = None
    return list(found)


def listing(folder: Path) -> list[str]:
    """Names and sizes of a find-links folder's files: what changes what it offers."""
    return [f"{path.name}:{path.stat().st_size}" for path in folder_files(folder)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerLinks:
    """Each local source's files, mounted read-only in the source's own container folder."""

    files: tuple[tuple[Path, str], ...] = ()  # (host file, path in the container)
    folders: tuple[str, ...] = ()  # the container folders, for PIP_FIND_LINKS

    def host_url(self, url: str) -> str:
        """A container file's URL (from pip's report) as the host file's, else ``url``."""
        path = unquote(urlsplit(url).path) if url.startswith("file:") else None
        for host, inside in self.files:
            if path == inside:
                return host.as_uri()
        return url


def container_links(index: IndexSettings) -> ContainerLinks:
    """The local find-links folders' and ``file://`` indexes' files, where containers see them."""
    sources = [
        *(folder_files(path) for link in index.find_links if (path := local_path(link))),
        *(index_files(url) for url in index.local_index_urls),
    ]
    files, folders = [], []
    for number, paths in enumerate(sources):
        folder = f"{LINKS_IN_CONTAINER}/{number}"
        folders.append(folder)
        files += [(path, f"{folder}/{path.name}") for path in paths]
    return ContainerLinks(files=tuple(files), folders=tuple(folders))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerIndex:
    environment: Mapping[str, str]
    files: tuple[tuple[Path, str], ...]  # mounted read-only
    links: ContainerLinks


def _quoted(token: str) -> str:
    return f'"{token}"' if any(c.isspace() or c in "\"'#" for c in token) else token


def netrc_for(path: Path, hosts: frozenset[str]) -> str | None:
    """The entries of the netrc at ``path`` for ``hosts`` only (no ``default``: it would answer
    any host), as netrc text; None when it has none."""
    try:
        entries = netrc.netrc(str(path)).hosts
    except (OSError, netrc.NetrcParseError):
        return None
    lines = []
    for machine in sorted(hosts & set(entries)):
        login, account, password = entries[machine]
        fields = [f"machine {_quoted(machine)}", f"login {_quoted(login)}"]
        if account:
            fields.append(f"account {_quoted(account)}")
        fields.append(f"password {_quoted(password)}")
        lines.append(" ".join(fields))
    return "".join(f"{line}\n" for line in lines) or None


@contextlib.contextmanager
def container_index(index: IndexSettings) -> Iterator[ContainerIndex]:
    """The environment and read-only files a container of this build gets; a netrc trimmed to
    the index hosts lives in a private temporary folder (never the cache) until the end."""
    links = container_links(index)
    environment = index.container_environment(find_links=links.folders)
    files: list[tuple[Path, str]] = []
    if index.ca_bundle is not None:
        files.append((index.ca_bundle, CA_BUNDLE_IN_CONTAINER))
    with tempfile.TemporaryDirectory(prefix="nativebuild-netrc-") as private:
        text = netrc_for(index.netrc, index.remote_hosts) if index.netrc is not None else None
        if text is None:
            environment.pop("NETRC", None)
        else:
            trimmed = Path(private) / "netrc"
            descriptor = os.open(trimmed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(text)
            files.append((trimmed, NETRC_IN_CONTAINER))
        yield ContainerIndex(environment=environment, files=(*files, *links.files), links=links)
