"""Turning pip's installation report into pins, checking them, and explaining pip's failures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nativebuild.errors import CompileError, ResolutionError
from nativebuild.pins import RESOLVER_VERSION, Pin, Resolution
from nativebuild.resolve.in_image import (
    IN_DIR,
    OUT_DIR,
    check_pins,
    parse_report,
    pip_environment,
    read_report,
    resolution_error_from_log,
    resolve_command,
)
from nativebuild.targets import Architecture, Target, expand_image, get_runtime

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
SHA_D = "d" * 64
FILES = "https://files.pythonhosted.org/packages"
MARKUPSAFE_WHL = "MarkupSafe-2.1.5-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def item(
    name: str, version: str, url: str, archive_info: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One entry of ``install``, shaped as pip 23+ writes it."""
    return {
        "download_info": {"url": url, "archive_info": archive_info},
        "is_direct": False,
        "is_yanked": False,
        "requested": True,
        "metadata": {
            "metadata_version": "2.1",
            "name": name,
            "version": version,
            "summary": f"The {name} package",
            "requires_python": ">=3.7",
            **extra,
        },
    }


REPORT: dict[str, Any] = {
    "version": "1",
    "pip_version": "24.0",
    "install": [
        item(
            "six",
            "1.16.0",
            f"{FILES}/d9/5a/e7c31adbe875f2abbb91bd84cf2dc52d792b5a01506781dbcf25c91daf11/"
            "six-1.16.0-py2.py3-none-any.whl",
            {"hash": f"sha256={SHA_A}", "hashes": {"sha256": SHA_A}},
        ),
        item(
            "MarkupSafe",
            "2.1.5",
            f"{FILES}/0a/7b/{MARKUPSAFE_WHL}",
            {"hash": f"sha256={SHA_B}", "hashes": {"sha256": SHA_B}},
        ),
        item(
            "Zope.Interface",
            "6.4",
            f"{FILES}/ab/cd/zope.interface-6.4.tar.gz",
            {"hash": f"sha256={SHA_C}"},  # pip < 23 wrote only the legacy field
        ),
        item(
            "attrs",
            "23.2.0",
            f"{FILES}/e0/44/attrs-23.2.0-py3-none-any.whl#sha256={SHA_D}",
            {"hashes": {"sha256": SHA_D, "md5": "0" * 32}},
        ),
    ],
    "environment": {
        "implementation_name": "cpython",
        "platform_machine": "x86_64",
        "python_version": "3.9",
        "sys_platform": "linux",
    },
}


def make_target(runtime: str = "python3.9", arch: Architecture = Architecture.X86_64) -> Target:
    row = get_runtime(runtime)
    return Target(
        runtime=row,
        arch=arch,
        glibc=row.glibc,
        build_image=expand_image(row.build_image, arch),
        runtime_image=expand_image(row.runtime_image, arch),
    )


def pin(filename: str, name: str = "pkg", version: str = "1.0") -> Pin:
    return Pin(
        name=name, version=version, filename=filename, url=f"{FILES}/{filename}", sha256=SHA_A
    )


def with_items(*items: dict[str, Any]) -> dict[str, Any]:
    report = copy.deepcopy(REPORT)
    report["install"] = list(items)
    return report


# --- parse_report --------------------------------------------------------------------------


def test_parse_report_realistic() -> None:
    resolution = parse_report(REPORT)
    assert resolution.pins == (
        Pin(
            name="attrs",
            version="23.2.0",
            filename="attrs-23.2.0-py3-none-any.whl",
            url=f"{FILES}/e0/44/attrs-23.2.0-py3-none-any.whl#sha256={SHA_D}",
            sha256=SHA_D,
        ),
        Pin(
            name="markupsafe",
            version="2.1.5",
            filename=MARKUPSAFE_WHL,
            url=f"{FILES}/0a/7b/{MARKUPSAFE_WHL}",
            sha256=SHA_B,
        ),
        Pin(
            name="six",
            version="1.16.0",
            filename="six-1.16.0-py2.py3-none-any.whl",
            url=REPORT["install"][0]["download_info"]["url"],
            sha256=SHA_A,
        ),
        Pin(
            name="zope-interface",
            version="6.4",
            filename="zope.interface-6.4.tar.gz",
            url=f"{FILES}/ab/cd/zope.interface-6.4.tar.gz",
            sha256=SHA_C,
        ),
    )


def test_parse_report_sorts_by_canonical_name() -> None:
    names = [p.name for p in parse_report(REPORT).pins]
    assert names == sorted(names)
    assert names == ["attrs", "markupsafe", "six", "zope-interface"]


def test_parse_report_wheel_and_sdist() -> None:
    pins = {p.name: p for p in parse_report(REPORT).pins}
    assert pins["markupsafe"].is_wheel
    assert not pins["zope-interface"].is_wheel


def test_parse_report_prefers_hashes_over_legacy_hash() -> None:
    report = with_items(
        item(
            "six",
            "1.16.0",
            f"{FILES}/six-1.16.0.tar.gz",
            {"hash": f"sha256={SHA_A}", "hashes": {"sha256": SHA_B}},
        )
    )
    assert parse_report(report).pins[0].sha256 == SHA_B


def test_parse_report_empty_install() -> None:
    assert parse_report(with_items()) == Resolution(pins=())
    assert parse_report({"version": "1"}) == Resolution(pins=())


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        (
            "https://user:secret@private.example/packages/pkg-1.0.tar.gz",
            "https://private.example/packages/pkg-1.0.tar.gz",
        ),
        (
            "https://__token__:pypi-AgEIcHlwaS5vcmc@private.example:8443/p/pkg-1.0.tar.gz#sha256=00",
            "https://private.example:8443/p/pkg-1.0.tar.gz#sha256=00",
        ),
        (
            "https://secret-token@private.example/p/pkg-1.0.tar.gz",
            "https://private.example/p/pkg-1.0.tar.gz",
        ),
    ],
)
def test_parse_report_strips_credentials(url: str, clean: str) -> None:
    (result,) = parse_report(
        with_items(item("pkg", "1.0", url, {"hashes": {"sha256": SHA_A}}))
    ).pins
    assert result.url == clean
    assert result.filename == "pkg-1.0.tar.gz"
    assert "secret" not in json.dumps(result.to_json())
    assert "pypi-AgEI" not in json.dumps(result.to_json())


def test_parse_report_unquotes_file_names() -> None:
    url = f"{FILES}/torch-2.3.0%2Bcpu-cp39-cp39-linux_x86_64.whl"
    (result,) = parse_report(
        with_items(item("torch", "2.3.0+cpu", url, {"hashes": {"sha256": SHA_A}}))
    ).pins
    assert result.filename == "torch-2.3.0+cpu-cp39-cp39-linux_x86_64.whl"
    assert result.url == url  # the URL itself stays as the index gave it


def test_parse_report_dir_info_refused() -> None:
    local = {
        "download_info": {"url": "file:///home/me/src/mypkg", "dir_info": {"editable": False}},
        "metadata": {"name": "mypkg", "version": "0.1"},
    }
    with pytest.raises(ResolutionError, match="mypkg comes from a local directory") as info:
        parse_report(with_items(local))
    assert info.value.hint is not None


def test_parse_report_vcs_info_refused() -> None:
    vcs = {
        "download_info": {
            "url": "https://github.com/org/pkg.git",
            "vcs_info": {"vcs": "git", "commit_id": "0" * 40, "requested_revision": "main"},
        },
        "metadata": {"name": "Pkg", "version": "0.1"},
    }
    with pytest.raises(ResolutionError, match="pkg comes from a local directory or a VCS URL"):
        parse_report(with_items(vcs))


@pytest.mark.parametrize(
    "archive_info",
    [{}, {"hashes": {}}, {"hashes": {"md5": "0" * 32}}, {"hash": "md5=" + "0" * 32}, {"hash": ""}],
)
def test_parse_report_without_sha256_refused(archive_info: dict[str, Any]) -> None:
    url = "https://user:secret@private.example/pkg-1.0.tar.gz"
    with pytest.raises(ResolutionError, match=r"no sha256 for pkg 1\.0") as info:
        parse_report(with_items(item("pkg", "1.0", url, archive_info)))
    assert "secret" not in str(info.value)
    assert info.value.hint is not None


def test_read_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT), encoding="utf-8")
    assert read_report(path) == parse_report(REPORT)


@pytest.mark.parametrize("content", [None, "", "{not json"])
def test_read_report_missing_or_broken(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ResolutionError, match=r"report\.json is missing or unreadable"):
        read_report(path)


# --- (de)serialisation ---------------------------------------------------------------------


def test_resolution_json_roundtrip() -> None:
    resolution = parse_report(REPORT)
    document = json.loads(json.dumps(resolution.to_json()))
    assert document["resolver"] == RESOLVER_VERSION
    assert Resolution.from_json(document) == resolution


def test_pin_json_has_exactly_the_fields() -> None:
    data = pin("pkg-1.0.tar.gz").to_json()
    assert set(data) == {"name", "version", "filename", "url", "sha256"}
    assert Pin.from_json(data) == pin("pkg-1.0.tar.gz")


# --- check_pins ----------------------------------------------------------------------------


def test_check_pins_accepts_what_the_target_loads() -> None:
    resolution = Resolution(
        pins=(
            pin(MARKUPSAFE_WHL, name="markupsafe"),
            pin("six-1.16.0-py2.py3-none-any.whl", name="six"),
            pin("zope.interface-6.4.tar.gz", name="zope-interface"),
            pin("legacy-1.0.zip", name="legacy"),
            pin("cryptography-43.0.0-cp39-abi3-manylinux_2_17_x86_64.whl", name="cryptography"),
        )
    )
    check_pins(resolution, make_target())


def test_check_pins_refuses_a_too_new_manylinux_wheel() -> None:
    resolution = Resolution(
        pins=(
            pin("numpy-2.0.2-cp39-cp39-manylinux_2_28_x86_64.whl", name="numpy", version="2.0.2"),
        )
    )
    with pytest.raises(ResolutionError) as info:
        check_pins(resolution, make_target("python3.9", Architecture.X86_64))
    message = str(info.value)
    assert "numpy 2.0.2" in message
    assert "manylinux_2_28" in message
    assert "python3.9 x86_64 (glibc 2.26)" in message
    assert info.value.hint is not None
    assert "--glibc" in info.value.hint
    assert "--no-binary numpy" in info.value.hint


def test_check_pins_same_wheel_fine_for_python_3_12() -> None:
    wheel = "numpy-2.0.2-cp312-cp312-manylinux_2_28_x86_64.whl"
    check_pins(Resolution(pins=(pin(wheel, name="numpy"),)), make_target("python3.12"))


@pytest.mark.parametrize(
    "filename",
    [
        "markupsafe-2.1.5-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "markupsafe-2.1.5-cp310-cp310-manylinux_2_17_x86_64.whl",
        "markupsafe-2.1.5-cp39-cp39-macosx_10_9_x86_64.whl",
        "markupsafe-2.1.5-cp39-cp39-linux_x86_64.whl",
    ],
)
def test_check_pins_refuses_wheels_for_another_target(filename: str) -> None:
    with pytest.raises(ResolutionError, match="cannot load"):
        check_pins(Resolution(pins=(pin(filename, name="markupsafe"),)), make_target())


@pytest.mark.parametrize(
    ("filename", "match"),
    [
        ("pkg.whl", "not a valid wheel file name"),
        ("pkg-1.0-py3-none.whl", "not a valid wheel file name"),
        ("pkg-1.0.exe", "neither a wheel nor an sdist"),
        ("pkg-1.0.tar.bz2", "neither a wheel nor an sdist"),
        ("pkg.tar.gz", "neither a wheel nor an sdist"),
        ("README", "neither a wheel nor an sdist"),
    ],
)
def test_check_pins_refuses_junk_names(filename: str, match: str) -> None:
    with pytest.raises(ResolutionError, match=match):
        check_pins(Resolution(pins=(pin(filename),)), make_target())


def test_check_pins_checks_every_pin() -> None:
    good = pin("six-1.16.0-py2.py3-none-any.whl", name="six")
    bad = pin("zzz-1.0-cp39-cp39-win_amd64.whl", name="zzz")
    with pytest.raises(ResolutionError, match="zzz"):
        check_pins(Resolution(pins=(good, bad)), make_target())


# --- pip's failures ------------------------------------------------------------------------

NO_MATCH = [
    (
        "ERROR: Could not find a version that satisfies the requirement nosuchpkg==1.0 "
        "(from versions: none)"
    ),
    "ERROR: No matching distribution found for nosuchpkg==1.0",
]
CONFLICT = [
    (
        "ERROR: Cannot install a==1.0 and b==2.0 because these package versions have conflicting "
        "dependencies."
    ),
    "",
    "The conflict is caused by:",
    "    a 1.0 depends on six==1.15.0",
    "    b 2.0 depends on six==1.16.0",
    "",
    "To fix this you could try to:",
    "1. loosen the range of package versions you've specified",
    "2. remove package versions to allow pip to attempt to solve the dependency conflict",
    "",
    (
        "ERROR: ResolutionImpossible: for help visit "
        "https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts"
    ),
]
HASH_MISMATCH = [
    (
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have "
        "updated the package versions, please update the hashes. Otherwise, examine the package "
        "contents carefully; someone may have tampered with them."
    ),
    (
        "    six==1.16.0 from https://files.pythonhosted.org/packages/d9/5a/"
        "six-1.16.0-py2.py3-none-any.whl:"
    ),
    "        Expected sha256 0000000000000000000000000000000000000000000000000000000000000000",
    "             Got        8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
]
_SSL_CAUSE = (
    "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)')))"
)
# What pip prints when the container does not trust the index: the retries, then the
# "no version" lines, because every index page failed.
SSL_FAILURE = [
    (
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) "
        f"after connection broken by 'SSLError({_SSL_CAUSE})': /simple/six/"
    ),
    (
        "Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming the ssl "
        "certificate: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: "
        f"/simple/six/ {_SSL_CAUSE} - skipping"
    ),
    (
        "ERROR: Could not find a version that satisfies the requirement six==1.16.0 "
        "(from versions: none)"
    ),
    "ERROR: No matching distribution found for six==1.16.0",
]
SSL_ONLY = [
    (
        "ERROR: Could not install packages due to an OSError: HTTPSConnectionPool(host='pypi.org', "
        f"port=443): Max retries exceeded with url: /simple/six/ {_SSL_CAUSE}"
    ),
]


@pytest.mark.parametrize(
    ("log", "hint_part"),
    [
        (NO_MATCH, "Check the package name and version"),
        (CONFLICT, "incompatible versions"),
        (HASH_MISMATCH, "--hash"),
        (SSL_ONLY, "PIP_CERT"),
        (SSL_FAILURE, "PIP_CERT"),
        (["Traceback (most recent call last):", "KeyboardInterrupt"], "-v"),
        ([], "-v"),
    ],
    ids=["no-match", "conflict", "hash", "ssl", "ssl-then-no-match", "other", "empty"],
)
def test_resolution_error_from_log_hints(log: list[str], hint_part: str) -> None:
    error = resolution_error_from_log(log)
    assert type(error) is ResolutionError
    assert error.hint is not None
    assert hint_part in error.hint
    for line in log:
        assert line in str(error)


def test_no_match_for_a_package_named_like_ssl_is_not_a_tls_problem() -> None:
    log = [
        (
            "ERROR: Could not find a version that satisfies the requirement pyopenssl==99 "
            "(from versions: 23.0.0, 24.0.0)"
        ),
        "ERROR: No matching distribution found for pyopenssl==99",
    ]
    error = resolution_error_from_log(log)
    assert error.hint is not None
    assert "Check the package name" in error.hint


def test_sdist_that_cannot_be_prepared_is_a_compile_error() -> None:
    log = [
        "  error: subprocess-exited-with-error",
        "  \u00d7 Getting requirements to build wheel did not run successfully.",
        "  \u2502 exit code: 1",
        "      Error: pg_config executable not found.",
        "ERROR: Failed to build 'psycopg2' when getting requirements to build wheel",
    ]
    error = resolution_error_from_log(log)
    assert isinstance(error, CompileError)
    assert "psycopg2" in str(error)
    assert "pg_config executable not found" in str(error)


# --- the command and its environment -------------------------------------------------------


def test_resolve_command_without_constraints() -> None:
    command = resolve_command("/var/lang/bin/python3.9", has_constraints=False)
    assert command[:4] == ("/var/lang/bin/python3.9", "-m", "pip", "install")
    assert "--dry-run" in command
    assert "--ignore-installed" in command
    assert command[command.index("--report") + 1] == f"{OUT_DIR}/report.json"
    assert command[command.index("-r") + 1] == f"{IN_DIR}/requirements.txt"
    assert "-c" not in command
    assert not any("constraints" in part for part in command)


def test_resolve_command_with_constraints() -> None:
    command = resolve_command("/var/lang/bin/python3.12", has_constraints=True)
    assert command[0] == "/var/lang/bin/python3.12"
    assert command[command.index("-c") + 1] == f"{IN_DIR}/constraints.txt"
    assert command.count("-c") == 1


def test_pip_environment() -> None:
    env = pip_environment()
    assert env["PIP_CACHE_DIR"] == "/tmp/nativebuild-pip-cache"
    assert env["HOME"] == "/tmp"
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
