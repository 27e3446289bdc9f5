"""The host's pip settings, discovered from real config files in tmp_path and forwarded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import nativebuild
from nativebuild.engine.runner import Mount, read_only_mounts
from nativebuild.index.pip_config import (
    CA_BUNDLE_IN_CONTAINER,
    NETRC_IN_CONTAINER,
    PYPI_SIMPLE,
    IndexSettings,
    discover,
    pip_config_files,
    read_pip_config,
)
from nativebuild.redact import redact

SECRET = "s3cr3t-token"  # noqa: S105 - a fake credential that must never leak


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def base_env(tmp_path: Path, home: Path, **extra: str) -> dict[str, str]:
    """HOME and the XDG directories inside tmp_path."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_DIRS": str(xdg), **extra}


def no_files_env(tmp_path: Path, home: Path, **extra: str) -> dict[str, str]:
    """As above, with every pip config file switched off."""
    return base_env(tmp_path, home, PIP_CONFIG_FILE=os.devnull, **extra)


def global_files(tmp_path: Path) -> list[Path]:
    """Stand-ins for XDG_CONFIG_DIRS' and /etc's pip.conf, so this machine's stay out."""
    return [tmp_path / "xdg" / "pip" / "pip.conf", tmp_path / "etc" / "pip.conf"]


def find(
    tmp_path: Path,
    env: Mapping[str, str],
    *,
    home: Path | None = None,
    site_prefix: Path | None = None,
) -> IndexSettings:
    return discover(env, home=home, site_prefix=site_prefix, global_files=global_files(tmp_path))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def user_config(home: Path, text: str) -> Path:
    return write(home / ".config" / "pip" / "pip.conf", text)


def index(url: str) -> str:
    return f"[global]\nindex-url = {url}\n"


# --- pip's configuration files -------------------------------------------------------------


def test_pip_config_files_in_pips_load_order(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {
        "XDG_CONFIG_DIRS": "/x1:/x2",
        "XDG_CONFIG_HOME": "/cfg",
        "PIP_CONFIG_FILE": str(tmp_path / "absent.conf"),
    }
    assert pip_config_files(env, home, site_prefix=Path("/venv")) == [
        Path("/x1/pip/pip.conf"),
        Path("/x2/pip/pip.conf"),
        Path("/etc/pip.conf"),
        home / ".pip" / "pip.conf",
        Path("/cfg/pip/pip.conf"),
        Path("/venv/pip.conf"),
        tmp_path / "absent.conf",
    ]


@pytest.mark.parametrize("env", [{}, {"XDG_CONFIG_DIRS": "", "XDG_CONFIG_HOME": ""}])
def test_pip_config_files_xdg_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "h"
    assert pip_config_files(env, home, site_prefix=None) == [
        Path("/etc/xdg/pip/pip.conf"),
        Path("/etc/pip.conf"),
        home / ".pip" / "pip.conf",
        home / ".config" / "pip" / "pip.conf",
    ]


def test_pip_config_files_global_files_replace_the_system_ones(tmp_path: Path) -> None:
    home = tmp_path / "h"
    files = pip_config_files({}, home, site_prefix=None, global_files=global_files(tmp_path))
    assert files == [
        *global_files(tmp_path),
        home / ".pip" / "pip.conf",
        home / ".config" / "pip" / "pip.conf",
    ]


def test_existing_pip_config_file_replaces_the_user_files(tmp_path: Path) -> None:
    """pip reads no user file when PIP_CONFIG_FILE names one that exists."""
    custom = write(tmp_path / "custom.conf", "")
    files = pip_config_files(
        {"PIP_CONFIG_FILE": str(custom)},
        tmp_path / "h",
        site_prefix=Path("/venv"),
        global_files=global_files(tmp_path),
    )
    assert files == [*global_files(tmp_path), Path("/venv/pip.conf"), custom]


def test_pip_config_file_devnull_disables_every_file(tmp_path: Path) -> None:
    env = {"PIP_CONFIG_FILE": os.devnull}
    assert pip_config_files(env, tmp_path, site_prefix=Path("/venv")) == []


def test_site_file_defaults_to_the_running_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    code = (
        "from pathlib import Path; from nativebuild.index.pip_config import pip_config_files; "
        "print(pip_config_files({}, Path('/h'))[-1])"
    )
    root = Path(nativebuild.__file__).resolve().parents[1]
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()).resolve() == (venv / "pip.conf").resolve()


def test_read_pip_config_later_files_win_and_skip_others(tmp_path: Path) -> None:
    low = write(
        tmp_path / "low.conf",
        "[global]\nindex-url = https://low.example/simple\ntrusted-host = low.example\n"
        "find-links = /opt/wheels\nconstraint = /etc/constraints.txt\n",
    )
    high = write(tmp_path / "high.conf", index("https://high.example/simple"))
    broken = write(tmp_path / "broken.conf", "this is not [an ini file\n")
    config = read_pip_config([low, tmp_path / "missing.conf", broken, high])
    assert config == {
        "index-url": "https://high.example/simple",
        "trusted-host": "low.example",
    }


def test_read_pip_config_command_section_beats_global_in_a_file(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "pip.conf",
        "[install]\nindex-url = https://install.example/simple\n"
        "[global]\nindex-url = https://global.example/simple\n",
    )
    assert read_pip_config([conf])["index-url"] == "https://install.example/simple"


def test_read_pip_config_command_section_beats_global_of_a_later_file(tmp_path: Path) -> None:
    low = write(tmp_path / "low.conf", "[download]\nindex-url = https://cmd.example/simple\n")
    high = write(tmp_path / "high.conf", index("https://global.example/simple"))
    assert read_pip_config([low, high])["index-url"] == "https://cmd.example/simple"


def test_read_pip_config_later_command_section_wins(tmp_path: Path) -> None:
    low = write(tmp_path / "low.conf", "[install]\nindex-url = https://low.example/simple\n")
    high = write(tmp_path / "high.conf", "[install]\nindex-url = https://high.example/simple\n")
    assert read_pip_config([low, high])["index-url"] == "https://high.example/simple"


def test_read_pip_config_normalizes_key_spellings(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "pip.conf",
        "[global]\nindex_url = https://mirror.example/simple\n"
        "Extra_Index_URL = https://extra.example/simple\n--trusted_host = mirror.example\n",
    )
    assert read_pip_config([conf]) == {
        "index-url": "https://mirror.example/simple",
        "extra-index-url": "https://extra.example/simple",
        "trusted-host": "mirror.example",
    }


def test_read_pip_config_underscore_spelling_overrides_dash_spelling(tmp_path: Path) -> None:
    low = write(tmp_path / "low.conf", index("https://low.example/simple"))
    high = write(tmp_path / "high.conf", "[global]\nindex_url = https://high.example/simple\n")
    assert read_pip_config([low, high])["index-url"] == "https://high.example/simple"


def test_read_pip_config_empty_command_value_leaves_global(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "pip.conf",
        "[global]\nindex-url = https://global.example/simple\n[install]\nindex-url =\n",
    )
    assert read_pip_config([conf]) == {"index-url": "https://global.example/simple"}


def test_read_pip_config_later_empty_value_resets_the_setting(tmp_path: Path) -> None:
    """As in pip: the later file replaces the value, and pip ignores empty values."""
    low = write(tmp_path / "low.conf", index("https://low.example/simple"))
    high = write(tmp_path / "high.conf", "[global]\nindex-url =\n")
    assert read_pip_config([low, high]) == {}


# --- precedence between the files, read through discover -----------------------------------


def test_etc_pip_conf_beats_the_xdg_global_file(tmp_path: Path, home: Path) -> None:
    xdg_file, etc_file = global_files(tmp_path)
    write(xdg_file, index("https://xdg.example/simple"))
    write(etc_file, index("https://etc.example/simple"))
    assert find(tmp_path, base_env(tmp_path, home)).index_url == "https://etc.example/simple"


def test_user_file_beats_global_files(tmp_path: Path, home: Path) -> None:
    for path in global_files(tmp_path):
        write(path, index("https://global.example/simple"))
    user_config(home, index("https://user.example/simple"))
    assert find(tmp_path, base_env(tmp_path, home)).index_url == "https://user.example/simple"


def test_xdg_user_file_beats_the_legacy_one(tmp_path: Path, home: Path) -> None:
    write(home / ".pip" / "pip.conf", index("https://legacy.example/simple"))
    user_config(home, index("https://user.example/simple"))
    assert find(tmp_path, base_env(tmp_path, home)).index_url == "https://user.example/simple"


def test_site_file_beats_user_file(tmp_path: Path, home: Path) -> None:
    user_config(home, index("https://user.example/simple"))
    venv = tmp_path / "venv"
    write(venv / "pip.conf", index("https://site.example/simple"))
    settings = find(tmp_path, base_env(tmp_path, home), site_prefix=venv)
    assert settings.index_url == "https://site.example/simple"


def test_pip_config_file_beats_site_file(tmp_path: Path, home: Path) -> None:
    venv = tmp_path / "venv"
    write(venv / "pip.conf", index("https://site.example/simple"))
    custom = write(tmp_path / "custom.conf", index("https://custom.example/simple"))
    env = base_env(tmp_path, home, PIP_CONFIG_FILE=str(custom))
    assert find(tmp_path, env, site_prefix=venv).index_url == "https://custom.example/simple"


def test_existing_pip_config_file_hides_the_user_file(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nextra-index-url = https://user-extra.example/simple\n")
    custom = write(tmp_path / "custom.conf", index("https://custom.example/simple"))
    settings = find(tmp_path, base_env(tmp_path, home, PIP_CONFIG_FILE=str(custom)))
    assert settings.index_url == "https://custom.example/simple"
    assert settings.extra_index_urls == ()


def test_missing_pip_config_file_keeps_the_user_file(tmp_path: Path, home: Path) -> None:
    user_config(home, index("https://user.example/simple"))
    env = base_env(tmp_path, home, PIP_CONFIG_FILE=str(tmp_path / "absent.conf"))
    assert find(tmp_path, env).index_url == "https://user.example/simple"


def test_command_section_of_a_global_file_beats_the_user_global(tmp_path: Path, home: Path) -> None:
    write(global_files(tmp_path)[1], "[install]\nindex-url = https://cmd.example/simple\n")
    user_config(home, index("https://user.example/simple"))
    assert find(tmp_path, base_env(tmp_path, home)).index_url == "https://cmd.example/simple"


# --- discover ------------------------------------------------------------------------------


def test_discover_defaults_to_pypi(tmp_path: Path, home: Path) -> None:
    settings = find(tmp_path, no_files_env(tmp_path, home))
    assert settings == IndexSettings()
    assert settings.index_url == PYPI_SIMPLE
    assert settings.index_urls == (PYPI_SIMPLE,)


def test_discover_reads_the_user_config_file(tmp_path: Path, home: Path) -> None:
    user_config(
        home,
        "[global]\nindex-url = https://mirror.example/simple\n"
        "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n"
        "trusted-host =\n    a.example\n    b.example\n",
    )
    settings = find(tmp_path, base_env(tmp_path, home))
    assert settings.index_url == "https://mirror.example/simple"
    assert settings.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert settings.trusted_hosts == ("a.example", "b.example")


def test_discover_home_from_env(tmp_path: Path, home: Path) -> None:
    write(home / ".pip" / "pip.conf", "[global]\nindex-url = https://legacy.example/simple\n")
    assert find(tmp_path, base_env(tmp_path, home)).index_url == "https://legacy.example/simple"


def test_discover_home_argument_beats_env(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other-home"
    user_config(other, "[global]\nindex-url = https://other.example/simple\n")
    env = base_env(tmp_path, home)
    assert find(tmp_path, env, home=other).index_url == "https://other.example/simple"


def test_discover_reads_xdg_site_files(tmp_path: Path, home: Path) -> None:
    env = base_env(tmp_path, home)
    write(
        Path(env["XDG_CONFIG_DIRS"]) / "pip" / "pip.conf",
        "[global]\nextra-index-url = https://site.example/simple\n",
    )
    assert find(tmp_path, env).extra_index_urls == ("https://site.example/simple",)


def test_pip_config_file_beats_user_file(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nindex-url = https://user.example/simple\n")
    custom = write(
        tmp_path / "custom.conf", "[global]\nindex-url = https://custom.example/simple\n"
    )
    settings = find(tmp_path, base_env(tmp_path, home, PIP_CONFIG_FILE=str(custom)))
    assert settings.index_url == "https://custom.example/simple"


def test_pip_config_file_devnull_ignores_the_user_file(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nindex-url = https://user.example/simple\n")
    assert find(tmp_path, no_files_env(tmp_path, home)).index_url == PYPI_SIMPLE


def test_environment_variables_beat_config_files(tmp_path: Path, home: Path) -> None:
    user_config(
        home,
        "[global]\nindex-url = https://file.example/simple\n"
        "extra-index-url = https://file-extra.example/simple\ntrusted-host = file.example\n",
    )
    env = base_env(
        tmp_path,
        home,
        PIP_INDEX_URL="https://env.example/simple",
        PIP_EXTRA_INDEX_URL="https://e1.example/simple https://e2.example/simple",
        PIP_TRUSTED_HOST="env.example",
    )
    settings = find(tmp_path, env)
    assert settings.index_url == "https://env.example/simple"
    assert settings.extra_index_urls == ("https://e1.example/simple", "https://e2.example/simple")
    assert settings.trusted_hosts == ("env.example",)


def test_empty_environment_variable_falls_back_to_the_file(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nindex-url = https://file.example/simple\n")
    settings = find(tmp_path, base_env(tmp_path, home, PIP_INDEX_URL=""))
    assert settings.index_url == "https://file.example/simple"


def test_local_indexes_are_skipped_and_listed_redacted(tmp_path: Path, home: Path) -> None:
    env = no_files_env(
        tmp_path,
        home,
        PIP_INDEX_URL="file:///opt/pypi/simple",
        PIP_EXTRA_INDEX_URL=(
            f"https://user:{SECRET}@private.example/simple file:///opt/more "
            f"ftp://user:{SECRET}@mirror.example/simple"
        ),
    )
    settings = find(tmp_path, env)
    assert settings.index_url == PYPI_SIMPLE
    assert settings.extra_index_urls == (f"https://user:{SECRET}@private.example/simple",)
    assert settings.skipped == (
        "file:///opt/pypi/simple",
        "file:///opt/more",
        "ftp://***@mirror.example/simple",
    )
    assert SECRET not in " ".join(settings.skipped)


def test_local_extra_index_from_a_config_file_is_skipped(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nextra-index-url = file:///opt/pypi/simple file:///opt/b\n")
    settings = find(tmp_path, base_env(tmp_path, home))
    assert settings.extra_index_urls == ()
    assert settings.skipped == ("file:///opt/pypi/simple", "file:///opt/b")


def test_find_links_and_constraints_are_never_forwarded(tmp_path: Path, home: Path) -> None:
    user_config(home, "[global]\nfind-links = /opt/wheels\nconstraint = /etc/c.txt\n")
    settings = find(
        tmp_path,
        base_env(tmp_path, home, PIP_FIND_LINKS="/opt/wheels", PIP_CONSTRAINT="/etc/c.txt"),
    )
    rendered = json.dumps(settings.container_environment())
    assert "/opt/wheels" not in rendered
    assert "c.txt" not in rendered
    assert not {"PIP_FIND_LINKS", "PIP_CONSTRAINT"} & set(settings.container_environment())


# --- CA bundle -----------------------------------------------------------------------------


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    names = ("pip-cert", "config-cert", "requests", "ssl")
    return {
        name: write(tmp_path / "certs" / f"{name}.pem", "-----BEGIN CERTIFICATE-----\n")
        for name in names
    }


def _cert_env(
    tmp_path: Path, home: Path, bundles: dict[str, Path], present: set[str]
) -> dict[str, str]:
    """Every source set; the ones not in ``present`` point at files that do not exist."""

    def path(name: str) -> str:
        return str(bundles[name] if name in present else tmp_path / "missing" / f"{name}.pem")

    user_config(home, f"[global]\ncert = {path('config-cert')}\n")
    return base_env(
        tmp_path,
        home,
        PIP_CERT=path("pip-cert"),
        REQUESTS_CA_BUNDLE=path("requests"),
        SSL_CERT_FILE=path("ssl"),
    )


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        ({"pip-cert", "config-cert", "requests", "ssl"}, "pip-cert"),
        ({"config-cert", "requests", "ssl"}, "config-cert"),
        ({"requests", "ssl"}, "requests"),
        ({"ssl"}, "ssl"),
        ({"pip-cert", "ssl"}, "pip-cert"),
        ({"config-cert", "ssl"}, "config-cert"),
    ],
)
def test_ca_bundle_precedence(
    tmp_path: Path, home: Path, bundles: dict[str, Path], present: set[str], chosen: str
) -> None:
    settings = find(tmp_path, _cert_env(tmp_path, home, bundles, present))
    assert settings.ca_bundle == bundles[chosen].resolve()


def test_no_ca_bundle_when_no_file_exists(tmp_path: Path, home: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    env = no_files_env(tmp_path, home, PIP_CERT=missing, SSL_CERT_FILE=missing)
    settings = find(tmp_path, env)
    assert settings.ca_bundle is None
    assert settings.container_files() == ()
    assert "PIP_CERT" not in settings.container_environment()


def test_ca_bundle_directory_is_not_a_bundle(tmp_path: Path, home: Path) -> None:
    env = no_files_env(tmp_path, home, PIP_CERT=str(tmp_path))
    assert find(tmp_path, env).ca_bundle is None


def test_ca_bundle_path_is_resolved(tmp_path: Path, home: Path, bundles: dict[str, Path]) -> None:
    link = tmp_path / "link.pem"
    link.symlink_to(bundles["ssl"])
    settings = find(tmp_path, no_files_env(tmp_path, home, SSL_CERT_FILE=str(link)))
    assert settings.ca_bundle == bundles["ssl"].resolve()


# --- netrc and proxies ---------------------------------------------------------------------


def test_netrc_from_home(tmp_path: Path, home: Path) -> None:
    netrc = write(home / ".netrc", f"machine private.example login u password {SECRET}\n")
    assert find(tmp_path, no_files_env(tmp_path, home)).netrc == netrc.resolve()


def test_netrc_variable_beats_home(tmp_path: Path, home: Path) -> None:
    write(home / ".netrc", "machine a login u password p\n")
    other = write(tmp_path / "other-netrc", "machine b login u password p\n")
    settings = find(tmp_path, no_files_env(tmp_path, home, NETRC=str(other)))
    assert settings.netrc == other.resolve()


def test_netrc_variable_to_a_missing_file_means_none(tmp_path: Path, home: Path) -> None:
    write(home / ".netrc", "machine a login u password p\n")
    settings = find(tmp_path, no_files_env(tmp_path, home, NETRC=str(tmp_path / "nope")))
    assert settings.netrc is None


def test_no_netrc(tmp_path: Path, home: Path) -> None:
    assert find(tmp_path, no_files_env(tmp_path, home)).netrc is None


def test_proxies_forwarded_in_a_fixed_order(tmp_path: Path, home: Path) -> None:
    env = no_files_env(
        tmp_path,
        home,
        https_proxy="http://proxy.corp:3128",
        NO_PROXY="localhost,.corp",
        HTTP_PROXY="http://proxy.corp:3128",
        ALL_PROXY="socks5://ignored:1080",
        HTTPS_PROXY="",
    )
    settings = find(tmp_path, env)
    assert settings.proxies == (
        ("HTTP_PROXY", "http://proxy.corp:3128"),
        ("NO_PROXY", "localhost,.corp"),
        ("https_proxy", "http://proxy.corp:3128"),
    )
    container_env = settings.container_environment()
    assert container_env["HTTP_PROXY"] == "http://proxy.corp:3128"
    assert container_env["https_proxy"] == "http://proxy.corp:3128"
    assert container_env["NO_PROXY"] == "localhost,.corp"
    assert "ALL_PROXY" not in container_env
    assert "HTTPS_PROXY" not in container_env


# --- what containers get -------------------------------------------------------------------


def test_container_environment_minimal() -> None:
    assert IndexSettings().container_environment() == {"PIP_INDEX_URL": PYPI_SIMPLE}
    assert IndexSettings().container_files() == ()


def test_container_environment_and_mounts_in_full(tmp_path: Path) -> None:
    bundle, netrc = tmp_path / "ca.pem", tmp_path / "netrc"
    settings = IndexSettings(
        index_url="https://mirror.example/simple",
        extra_index_urls=("https://a.example/simple", "https://b.example/simple"),
        trusted_hosts=("a.example", "b.example:8080"),
        ca_bundle=bundle,
        netrc=netrc,
        proxies=(("HTTPS_PROXY", "http://proxy:3128"),),
    )
    assert settings.container_environment() == {
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://b.example/simple",
        "PIP_TRUSTED_HOST": "a.example b.example:8080",
        "PIP_CERT": CA_BUNDLE_IN_CONTAINER,
        "REQUESTS_CA_BUNDLE": CA_BUNDLE_IN_CONTAINER,
        "SSL_CERT_FILE": CA_BUNDLE_IN_CONTAINER,
        "NETRC": NETRC_IN_CONTAINER,
        "HTTPS_PROXY": "http://proxy:3128",
    }
    assert read_only_mounts(settings.container_files()) == (
        Mount(source=bundle, target=CA_BUNDLE_IN_CONTAINER, read_only=True),
        Mount(source=netrc, target=NETRC_IN_CONTAINER, read_only=True),
    )


def test_container_environment_never_names_host_paths(tmp_path: Path) -> None:
    bundle, netrc = tmp_path / "host-ca.pem", tmp_path / "host-netrc"
    settings = IndexSettings(ca_bundle=bundle, netrc=netrc)
    assert str(tmp_path) not in json.dumps(settings.container_environment())


def test_discovered_settings_round_trip_into_containers(
    tmp_path: Path, home: Path, bundles: dict[str, Path]
) -> None:
    netrc = write(home / ".netrc", "machine m login u password p\n")
    env = no_files_env(tmp_path, home, PIP_CERT=str(bundles["pip-cert"]))
    mounts = read_only_mounts(find(tmp_path, env).container_files())
    assert [(m.source, m.target, m.read_only) for m in mounts] == [
        (bundles["pip-cert"].resolve(), CA_BUNDLE_IN_CONTAINER, True),
        (netrc.resolve(), NETRC_IN_CONTAINER, True),
    ]


# --- overrides, redaction, fingerprints ----------------------------------------------------


def test_with_overrides_replaces_index_and_merges_the_rest() -> None:
    base = IndexSettings(
        index_url="https://host.example/simple",
        extra_index_urls=("https://a.example/simple",),
        trusted_hosts=("a.example",),
    )
    merged = base.with_overrides(
        index_url="https://req.example/simple",
        extra_index_urls=["https://b.example/simple", "https://a.example/simple"],
        trusted_hosts=["a.example", "b.example"],
    )
    assert merged.index_url == "https://req.example/simple"
    assert merged.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert merged.trusted_hosts == ("a.example", "b.example")
    assert merged.index_urls == (
        "https://req.example/simple",
        "https://a.example/simple",
        "https://b.example/simple",
    )
    assert base.index_url == "https://host.example/simple"  # frozen: a new record


def test_with_overrides_without_index_keeps_the_host_one(tmp_path: Path) -> None:
    base = IndexSettings(index_url="https://host.example/simple", ca_bundle=tmp_path / "ca")
    merged = base.with_overrides(index_url=None, extra_index_urls=[], trusted_hosts=[])
    assert merged == base


def test_with_overrides_drops_a_local_index_url_and_keeps_the_current_one() -> None:
    base = IndexSettings(index_url="https://host.example/simple")
    merged = base.with_overrides(
        index_url="file:///opt/pypi/simple", extra_index_urls=[], trusted_hosts=[]
    )
    assert merged.index_url == "https://host.example/simple"
    assert merged.skipped == ("file:///opt/pypi/simple",)


@pytest.mark.parametrize("local", ["/opt/pypi/simple", "./wheels", "file:///opt/pypi/simple"])
def test_with_overrides_drops_local_extra_indexes(local: str) -> None:
    base = IndexSettings(
        extra_index_urls=("https://a.example/simple",), skipped=("file:///from/host",)
    )
    merged = base.with_overrides(
        index_url=None,
        extra_index_urls=[local, "https://b.example/simple"],
        trusted_hosts=[],
    )
    assert merged.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert merged.index_urls == (PYPI_SIMPLE, *merged.extra_index_urls)
    assert merged.skipped == ("file:///from/host", local)
    assert local not in merged.container_environment().get("PIP_EXTRA_INDEX_URL", "")


def test_with_overrides_redacts_what_it_skips() -> None:
    merged = IndexSettings().with_overrides(
        index_url=f"ftp://user:{SECRET}@mirror.example/simple",
        extra_index_urls=[f"file://user:{SECRET}@host/opt/more"],
        trusted_hosts=[],
    )
    assert merged.index_url == PYPI_SIMPLE
    assert merged.extra_index_urls == ()
    assert merged.skipped == ("ftp://***@mirror.example/simple", "file://***@host/opt/more")
    assert SECRET not in json.dumps([*merged.skipped, merged.container_environment()])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://user:{SECRET}@host.example/simple", "https://***@host.example/simple"),
        (f"https://{SECRET}@host.example/simple", "https://***@host.example/simple"),
        (f"https://u:{SECRET}@host.example:8443/s/", "https://***@host.example:8443/s/"),
        (f"https://u:p@ss{SECRET}@host.example/x", "https://***@host.example/x"),
        ("https://host.example/simple", "https://host.example/simple"),
        ("https://host.example/a@b", "https://host.example/a@b"),
        ("file:///opt/pypi/simple", "file:///opt/pypi/simple"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_fingerprint_fields_never_hold_credentials() -> None:
    settings = IndexSettings(
        index_url=f"https://user:{SECRET}@private.example/simple",
        extra_index_urls=(f"https://__token__:{SECRET}@extra.example/simple",),
    )
    fields = settings.fingerprint_fields()
    assert SECRET not in json.dumps(fields)
    assert fields == {
        "index_url": "https://***@private.example/simple",
        "extra_index_urls": "https://***@extra.example/simple",
    }


def test_fingerprint_follows_the_indexes_not_the_credentials() -> None:
    one = IndexSettings(index_url="https://a:1@private.example/simple")
    two = IndexSettings(index_url="https://b:2@private.example/simple")
    other = IndexSettings(index_url="https://a:1@other.example/simple")
    extra = IndexSettings(
        index_url="https://a:1@private.example/simple",
        extra_index_urls=("https://x.example/simple",),
    )
    assert one.fingerprint_fields() == two.fingerprint_fields()
    assert one.fingerprint_fields() != other.fingerprint_fields()
    assert one.fingerprint_fields() != extra.fingerprint_fields()


def test_fingerprint_from_a_credentialed_environment(tmp_path: Path, home: Path) -> None:
    env = no_files_env(
        tmp_path,
        home,
        PIP_INDEX_URL=f"https://user:{SECRET}@private.example/simple",
        PIP_EXTRA_INDEX_URL=f"https://{SECRET}@extra.example/simple",
    )
    assert SECRET not in json.dumps(find(tmp_path, env).fingerprint_fields())
