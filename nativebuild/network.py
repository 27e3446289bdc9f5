"""How pip reaches the package index, from the host's settings, for the host and for containers.

Users behind corporate proxies and private indexes configure pip on their machine; a build
container knows none of that. We forward what pip needs (index URLs, trusted hosts, the CA
bundle, netrc, proxies) at run time only: nothing is written into an image, a log or an archive.
Deliberately not forwarded: constraints files and find-links, which point at host paths.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from nativebuild.container import Mount

CA_BUNDLE_IN_CONTAINER = "/nativebuild/ca-bundle.crt"
NETRC_IN_CONTAINER = "/nativebuild/netrc"
PYPI_SIMPLE = "https://pypi.org/simple"

_PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
_PIP_SECTIONS = ("global", "install", "download", "wheel")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexSettings:
    """Where packages come from and how to trust and authenticate to it."""

    index_url: str = PYPI_SIMPLE
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    netrc: Path | None = None
    proxies: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()  # settings we saw but cannot forward, for a note to the user

    def with_overrides(
        self,
        *,
        index_url: str | None,
        extra_index_urls: Sequence[str],
        trusted_hosts: Sequence[str],
    ) -> IndexSettings:
        """Apply a requirements file's own ``--index-url`` and friends (they win, as in pip)."""
        return dataclasses.replace(
            self,
            index_url=index_url or self.index_url,
            extra_index_urls=_unique((*self.extra_index_urls, *extra_index_urls)),
            trusted_hosts=_unique((*self.trusted_hosts, *trusted_hosts)),
        )

    @property
    def index_urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)

    def container_environment(self) -> dict[str, str]:
        env = {"PIP_INDEX_URL": self.index_url}
        if self.extra_index_urls:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if self.trusted_hosts:
            env["PIP_TRUSTED_HOST"] = " ".join(self.trusted_hosts)
        if self.ca_bundle is not None:
            # pip reads PIP_CERT; build backends that fetch on their own read the other two.
            for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
                env[name] = CA_BUNDLE_IN_CONTAINER
        if self.netrc is not None:
            env["NETRC"] = NETRC_IN_CONTAINER
        env.update(dict(self.proxies))
        return env

    def container_mounts(self) -> tuple[Mount, ...]:
        mounts = []
        if self.ca_bundle is not None:
            mounts.append(Mount(source=self.ca_bundle, target=CA_BUNDLE_IN_CONTAINER))
        if self.netrc is not None:
            mounts.append(Mount(source=self.netrc, target=NETRC_IN_CONTAINER))
        return tuple(mounts)

    def fingerprint_fields(self) -> dict[str, str]:
        """What changes which files resolution may pick, with credentials removed."""
        return {
            "index_url": redact(self.index_url),
            "extra_index_urls": " ".join(redact(u) for u in self.extra_index_urls),
        }


def redact(url: str) -> str:
    """``https://user:secret@host/x`` → ``https://***@host/x``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"***@{host}").geturl()


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _is_remote(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def pip_config_files(env: Mapping[str, str], home: Path) -> list[Path]:
    """pip's configuration files, lowest precedence first (as pip documents them)."""
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    xdg_dirs = env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    files = [Path("/etc/pip.conf")]
    files += [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d]
    files += [home / ".pip" / "pip.conf"]
    files += [Path(env.get("XDG_CONFIG_HOME", str(home / ".config"))) / "pip" / "pip.conf"]
    if "PIP_CONFIG_FILE" in env:
        files.append(Path(env["PIP_CONFIG_FILE"]))
    return files


def read_pip_config(files: Sequence[Path]) -> dict[str, str]:
    """The keys we forward, merged in precedence order (later files win)."""
    merged: dict[str, str] = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        for section in _PIP_SECTIONS:
            if parser.has_section(section):
                for key in ("index-url", "extra-index-url", "trusted-host", "cert"):
                    if parser.has_option(section, key):
                        merged[key] = parser.get(section, key)
    return merged


def discover(env: Mapping[str, str], *, home: Path | None = None) -> IndexSettings:
    """The host's pip index settings: config files < ``PIP_*`` variables."""
    home = home if home is not None else Path(env.get("HOME", str(Path.home())))
    config = read_pip_config(pip_config_files(env, home))
    index_url = env.get("PIP_INDEX_URL") or config.get("index-url") or PYPI_SIMPLE
    extra = (env.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url") or "").split()
    trusted = (env.get("PIP_TRUSTED_HOST") or config.get("trusted-host") or "").split()
    skipped = [u for u in (index_url, *extra) if not _is_remote(u)]
    if not _is_remote(index_url):
        index_url = PYPI_SIMPLE
    ca_bundle = None
    for candidate in (
        env.get("PIP_CERT"),
        config.get("cert"),
        env.get("REQUESTS_CA_BUNDLE"),
        env.get("SSL_CERT_FILE"),
    ):
        if candidate and Path(candidate).is_file():
            ca_bundle = Path(candidate).resolve()
            break
    netrc_path = Path(env["NETRC"]) if env.get("NETRC") else home / ".netrc"
    proxies = tuple((name, env[name]) for name in _PROXY_VARIABLES if env.get(name))
    return IndexSettings(
        index_url=index_url,
        extra_index_urls=tuple(u for u in extra if _is_remote(u)),
        trusted_hosts=tuple(trusted),
        ca_bundle=ca_bundle,
        netrc=netrc_path.resolve() if netrc_path.is_file() else None,
        proxies=proxies,
        skipped=tuple(redact(u) for u in skipped),
    )
