"""uv on the host: the command line, and which failures fall back to the build image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nativebuild.errors import ResolutionError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.index.uv import UvResult, host_python, uv_environment
from nativebuild.inputs.requirements import parse_requirements_text
from nativebuild.resolve.host import HostResolutionUnavailable, compile_arguments, resolve_on_host
from nativebuild.targets import Architecture, GlibcVersion, Target, get_runtime


def target(runtime: str = "python3.9", glibc: str | None = None) -> Target:
    rt = get_runtime(runtime)
    return Target(
        runtime=rt, arch=Architecture.X86_64, glibc=GlibcVersion.parse(glibc) if glibc else rt.glibc,
        build_image="b", runtime_image="r",
    )  # fmt: skip


class ScriptedUv:
    def __init__(self, result: UvResult, pylock: str | None = None, installed: bool = True) -> None:
        self.result, self.pylock, self.installed = result, pylock, installed
        self.args: list[str] = []
        self.env: Mapping[str, str] = {}

    def available(self) -> bool:
        return self.installed

    def run(self, args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]) -> UvResult:
        self.args, self.env = list(args), env
        if self.pylock is not None:
            Path(args[args.index("--output-file") + 1]).write_text(self.pylock)
        return self.result


def requirements(text: str = "six==1.16.0\n"):  # type: ignore[no-untyped-def]
    return parse_requirements_text(
        text, origin="r.txt", base_dir=Path(), read_file=Path.read_text, env={}
    )


def test_compile_arguments_aim_at_the_target_and_never_build(tmp_path: Path) -> None:
    index = IndexSettings(
        index_url="https://idx/simple", extra_index_urls=("https://x/simple",), trusted_hosts=("x",)
    )
    args = compile_arguments(
        target("python3.11"), requirements=tmp_path / "r.txt", constraints=tmp_path / "c.txt",
        output=tmp_path / "pylock.toml", index=index,
    )  # fmt: skip
    assert args[:3] == ["pip", "compile", str(tmp_path / "r.txt")]
    assert args[args.index("--python-version") + 1] == "3.11"
    assert args[args.index("--python-platform") + 1] == "x86_64-manylinux_2_17"
    assert args[args.index("--format") + 1] == "pylock.toml"
    assert "--no-build" in args
    assert args[args.index("--index-url") + 1] == "https://idx/simple"
    assert args[args.index("--extra-index-url") + 1] == "https://x/simple"
    assert args[args.index("--allow-insecure-host") + 1] == "x"
    assert args[args.index("--constraints") + 1] == str(tmp_path / "c.txt")


def test_uv_is_told_which_interpreter_to_read_instead_of_searching(tmp_path: Path) -> None:
    """Without --python, uv searches PATH for the target's version (pyenv's shims run one by
    one) before it resolves anything; with it, uv reads that one interpreter."""
    args = compile_arguments(
        target(), requirements=tmp_path / "r.txt", constraints=None,
        output=tmp_path / "pylock.toml", index=IndexSettings(), python="/opt/py/bin/python3",
    )  # fmt: skip
    assert args[args.index("--python") + 1] == "/opt/py/bin/python3"
    assert args[args.index("--python-version") + 1] == "3.9", "the target's version still rules"
    plain = compile_arguments(
        target(), requirements=tmp_path / "r.txt", constraints=None,
        output=tmp_path / "pylock.toml", index=IndexSettings(),
    )  # fmt: skip
    assert "--python" not in plain


def test_the_interpreter_is_the_one_running_nativebuild_unless_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.executable", "/opt/py/bin/python3")
    assert host_python() == "/opt/py/bin/python3"
    uv = ScriptedUv(UvResult(returncode=0, stdout="", stderr=""), PYLOCK)
    resolve_on_host(
        requirements(), target(), uv=uv, index=IndexSettings(), env={}, workdir=tmp_path,
        uv_cache=tmp_path,
    )  # fmt: skip
    assert uv.args[uv.args.index("--python") + 1] == "/opt/py/bin/python3"
    monkeypatch.setattr("sys.frozen", True, raising=False)
    assert host_python() is None
    monkeypatch.setattr("sys.frozen", False)
    monkeypatch.setattr("sys.executable", "")
    assert host_python() is None


def test_uv_environment_is_clean_and_carries_the_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = uv_environment(
        {
            "PATH": "/bin",
            "HOME": "/h",
            "AWS_SECRET_ACCESS_KEY": "s",
            "UV_INDEX_URL": "https://evil",
        },
        IndexSettings(ca_bundle=ca, proxies=(("HTTPS_PROXY", "http://proxy:3128"),)),
        tmp_path / "uv",
    )
    assert env["SSL_CERT_FILE"] == str(ca)
    assert env["UV_NO_CONFIG"] == "1"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "UV_INDEX_URL" not in env


PYLOCK = """
lock-version = "1.0"
[[packages]]
name = "six"
version = "1.16.0"
wheels = [{ url = "https://files/six-1.16.0-py2.py3-none-any.whl", hashes = { sha256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" } }]
"""


def test_successful_resolution_reads_the_lock(tmp_path: Path) -> None:
    uv = ScriptedUv(UvResult(returncode=0, stdout="", stderr=""), PYLOCK)
    result = resolve_on_host(
        requirements(),
        target(),
        uv=uv,
        index=IndexSettings(),
        env={},
        workdir=tmp_path,
        uv_cache=tmp_path,
    )
    [package] = result.packages
    assert (package.name, package.version) == ("six", "1.16.0")
    assert (tmp_path / "requirements.txt").read_text().strip() == "six==1.16.0"


@pytest.mark.parametrize(
    "stderr",
    [
        "error: ...\nhint: Wheels are required for `docopt` because building from source is disabled (i.e., with `--no-build`)",
        "Because psycopg2==2.9.9 has no usable wheels and you require psycopg2==2.9.9 ...",
    ],
)
def test_needing_an_sdist_build_falls_back(tmp_path: Path, stderr: str) -> None:
    uv = ScriptedUv(UvResult(returncode=1, stdout="", stderr=stderr))
    with pytest.raises(HostResolutionUnavailable):
        resolve_on_host(
            requirements(),
            target(),
            uv=uv,
            index=IndexSettings(),
            env={},
            workdir=tmp_path,
            uv_cache=tmp_path,
        )


def test_uv_missing_falls_back(tmp_path: Path) -> None:
    uv = ScriptedUv(UvResult(returncode=0, stdout="", stderr=""), installed=False)
    with pytest.raises(HostResolutionUnavailable, match="not installed"):
        resolve_on_host(
            requirements(),
            target(),
            uv=uv,
            index=IndexSettings(),
            env={},
            workdir=tmp_path,
            uv_cache=tmp_path,
        )


def test_glibc_below_uv_triples_falls_back(tmp_path: Path) -> None:
    uv = ScriptedUv(UvResult(returncode=0, stdout="", stderr=""), PYLOCK)
    with pytest.raises(HostResolutionUnavailable):
        resolve_on_host(
            requirements(),
            target(glibc="2.12"),
            uv=uv,
            index=IndexSettings(),
            env={},
            workdir=tmp_path,
            uv_cache=tmp_path,
        )


def test_genuine_failure_is_a_resolution_error_without_credentials(tmp_path: Path) -> None:
    stderr = (
        "error: Failed to fetch: `https://user:hunter2@private.example/simple/nope/`\n"
        "  Because nope was not found in the package registry and you require nope, ..."
    )
    uv = ScriptedUv(UvResult(returncode=1, stdout="", stderr=stderr))
    with pytest.raises(ResolutionError) as caught:
        resolve_on_host(
            requirements("nope\n"),
            target(),
            uv=uv,
            index=IndexSettings(),
            env={},
            workdir=tmp_path,
            uv_cache=tmp_path,
        )
    assert "hunter2" not in str(caught.value)
    assert "not found in the package registry" in str(caught.value)
    assert caught.value.hint is not None
