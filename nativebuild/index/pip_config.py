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
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from nativebuild.redact import redact

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
# pip applies [global] first and then the running command's section, whatever file each is in.
_PIP_SECTIONS = ("global", "install", "download", "wheel")
_FORWARDED_KEYS = ("index-url", "extra-index-url", "trusted-host", "cert")


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
        """Apply a requirements file's own ``--index-url`` and friends (they win, as in pip).

        Local indexes (``file://``, paths) are dropped and noted, as :func:`discover` does for
        the host's: containers cannot see host paths.
        """
        local = [u for u in (index_url or "", *extra_index_urls) if u and not _is_remote(u)]
        return dataclasses.replace(
            self,
            index_url=index_url if index_url and _is_remote(index_url) else self.index_url,
            extra_index_urls=_unique(
                (*self.extra_index_urls, *(u for u in extra_index_urls if _is_remote(u)))
            ),
            trusted_hosts=_unique((*self.trusted_hosts, *trusted_hosts)),
            skipped=_unique((*self.skipped, *(redact(u) for u in local))),
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

    def container_files(self) -> tuple[tuple[Path, str], ...]:
        """(host file, path in the container) of what pip needs there: mounted read-only."""
        files = []
        if self.ca_bundle is not None:
            files.append((self.ca_bundle, CA_BUNDLE_IN_CONTAINER))
        if self.netrc is not None:
            files.append((self.netrc, NETRC_IN_CONTAINER))
        return tuple(files)

    def fingerprint_fields(self) -> dict[str, str]:
        """What changes which files resolution may pick, with credentials removed."""
        return {
            "index_url": redact(self.index_url),
            "extra_index_urls": " ".join(redact(u) for u in self.extra_index_urls),
        }


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _is_remote(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _running_venv() -> Path | None:
    """The virtualenv this Python runs in, whose ``pip.conf`` is pip's "site" file."""
    return Path(sys.prefix) if sys.prefix != sys.base_prefix else None


_RUNNING_VENV = _running_venv()


def pip_config_files(
    env: Mapping[str, str],
    home: Path,
    *,
    site_prefix: Path | None = _RUNNING_VENV,
    global_files: Sequence[Path] | None = None,
) -> list[Path]:
    """pip's configuration files in pip's load order: global, user, site, ``PIP_CONFIG_FILE``.

    Later files win. ``global_files`` replaces the system-wide ones (for tests).
    """
    config_file = env.get("PIP_CONFIG_FILE", "")
    if config_file == os.devnull:
        return []
    if global_files is None:
        xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
        global_files = [
            *(Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d),
            Path("/etc/pip.conf"),
        ]
    files = list(global_files)
    # pip reads no user file when PIP_CONFIG_FILE names one that exists.
    if not (config_file and Path(config_file).exists()):
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    if site_prefix is not None:
        files.append(site_prefix / "pip.conf")
    if config_file:
        files.append(Path(config_file))
    return files


def _normalize_key(name: str) -> str:
    """As pip does: ``index_url``, ``Index-URL`` and ``--index-url`` are one setting."""
    return name.lower().replace("_", "-").removeprefix("--")


def read_pip_config(files: Sequence[Path]) -> dict[str, str]:
    """The keys we forward, merged as pip merges them.

    Later files win per section; then a command section beats ``[global]`` whichever file
    each came from; empty values are ignored (pip's default applies).
    """
    values: dict[tuple[str, str], str] = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, UnicodeDecodeError, configparser.Error):
            continue
        for section in parser.sections():
            for name, value in parser.items(section):
                values[section, _normalize_key(name)] = value
    merged: dict[str, str] = {}
    for section in _PIP_SECTIONS:
        for key in _FORWARDED_KEYS:
            if values.get((section, key)):
                merged[key] = values[section, key]
    return merged


def discover(
    env: Mapping[str, str],
    *,
    home: Path | None = None,
    site_prefix: Path | None = _RUNNING_VENV,
    global_files: Sequence[Path] | None = None,
) -> IndexSettings:
    """The host's pip index settings: config files < ``PIP_*`` variables."""
    home = home if home is not None else Path(env.get("HOME", str(Path.home())))
    files = pip_config_files(env, home, site_prefix=site_prefix, global_files=global_files)
    config = read_pip_config(files)
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
