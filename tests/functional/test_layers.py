"""Layers, split builds, several functions, bytecode, slimming, the size budget and the
manifest, through the CLI on real files, with fake containers (tests/fakes.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from tests.fakes import ArchiveJobsRunner, FakeIndex, FakeUv, IndexFile
from tests.wheelfactory import make_tree, make_wheel

IMAGE = "example/build:{arch}"


def add_custom_wheel(index: FakeIndex, name: str, version: str, **kwargs: Any) -> IndexFile:
    """A wheel with the given files, served by the fake index."""
    path = make_wheel(index.root, name, version, **kwargs)
    entry = IndexFile(name, version, path, hashlib.sha256(path.read_bytes()).hexdigest(), ())
    index.files[name] = entry
    return entry


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    add_custom_wheel(
        index, "native", "1.0",
        files={
            "native/__init__.py": "from native import helper\n",
            "native/helper.py": "X = 1\n",
            "native/_core.so": b"\x7fELF vendor binary, never stripped",
            "native/tests/test_native.py": "def test(): pass\n",
            "native/docs/guide.rst": "docs " * 100,
        },
        data_files={"data/lib/libnative.so.1": b"\x7fELF lib", "scripts/native-run": "#!python\n"},
        executable={"scripts/native-run"},
        dist_info={"top_level.txt": "native\n"},
    )  # fmt: skip
    add_custom_wheel(index, "boto3", "1.35.0", files={"boto3/__init__.py": "V = 1\n"})
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> ArchiveJobsRunner:
    runner = ArchiveJobsRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    uv = FakeUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    return runner


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "project",
        {
            "requirements.txt": "six==1.16.0\nnative==1.0\nmarkupsafe==2.1.5\n",
            "app/handler.py": "import six\n\ndef handler(event, context):\n    return 1\n",
            "app/notes.txt": "not needed at run time\n",
        },
    )


def build(project: Path, cache: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    args = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", IMAGE, "--glibc", "2.31",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--project", str(project),
        "--json", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    return (
        result.exit_code,
        json.loads(result.stdout) if result.exit_code == 0 else {},
        result.stderr,
    )


def by_kind(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {archive["kind"]: archive for archive in result["archives"]}


def names(archive: dict[str, Any]) -> list[str]:
    with zipfile.ZipFile(archive["path"]) as zf:
        return zf.namelist()


def test_layer_puts_packages_under_python_and_libraries_under_lib(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    code, result, err = build(project, tmp_path / "cache", "--kind", "layer")
    assert code == 0, err
    (layer,) = result["archives"]
    assert Path(layer["path"]).name == "function-layer-python3.9-x86_64.zip"
    listing = names(layer)
    assert "python/six/__init__.py" in listing
    assert "python/native/_core.so" in listing
    assert "python/markupsafe/_speedups.so" in listing
    assert "python/handler.py" in listing  # --src rides along in a layer
    assert "lib/libnative.so.1" in listing  # /opt/lib is on LD_LIBRARY_PATH
    assert "bin/native-run" in listing
    assert not [n for n in listing if not n.startswith(("python/", "lib/", "bin/"))]
    assert layer["layer_layout"] == "python"
    assert layer["compatible_runtimes"] == ["python3.9"]
    assert layer["compatible_architectures"] == ["x86_64"]


def test_site_packages_layout(project: Path, tmp_path: Path, fake: ArchiveJobsRunner) -> None:
    code, result, err = build(
        project, tmp_path / "cache", "--kind", "layer", "--layer-layout", "site-packages"
    )
    assert code == 0, err
    listing = names(result["archives"][0])
    assert "python/lib/python3.9/site-packages/six/__init__.py" in listing
    assert "lib/libnative.so.1" in listing


def test_split_writes_layer_and_code_only_function_from_one_resolution(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    code, result, err = build(project, tmp_path / "cache", "--kind", "split")
    assert code == 0, err
    archives = by_kind(result)
    assert sorted(names(archives["function"])) == ["handler.py", "notes.txt"]
    assert "python/six/__init__.py" in names(archives["layer"])
    assert archives["function"]["layers"] == [Path(archives["layer"]["path"]).name]
    assert archives["function"]["wheels"] == []
    assert {w["name"] for w in archives["layer"]["wheels"]} == {"six", "native", "markupsafe"}
    resolutions = [s for s in fake.specs if {"--dry-run", "--resolve-first"} & set(s.command)]
    assert len(resolutions) == 1


def test_manifest_describes_every_archive(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    code, result, err = build(project, tmp_path / "cache", "--kind", "split")
    assert code == 0, err
    manifest_path = project / "dist" / "manifest.json"
    assert result["manifest"] == str(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["schema"] == "nativebuild-manifest/1"
    entries = {entry["kind"]: entry for entry in manifest["archives"]}
    for kind, entry in entries.items():
        data = (project / "dist" / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), kind
        assert entry["code_sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert entry["size"] == len(data)
        with zipfile.ZipFile(project / "dist" / entry["file"]) as zf:
            assert entry["unzipped_size"] == sum(i.file_size for i in zf.infolist())
            assert entry["files"] == len(zf.infolist())
    assert entries["layer"]["layer"]["compatible_runtimes"] == ["python3.9"]
    assert entries["function"]["layers"] == [entries["layer"]["file"]]
    wheels = {w["name"]: w for w in entries["layer"]["wheels"]}
    assert wheels["markupsafe"]["source"] == "compiled"
    assert wheels["markupsafe"]["sdist"] == "markupsafe-2.1.5.tar.gz"
    assert wheels["six"]["url"].endswith("six-1.16.0-py3-none-any.whl")
    assert entries["layer"]["images"]["build"] == {
        "ref": "example/build:x86_64",
        "id": "sha256:" + "1" * 64,
    }
    assert sorted(p.name for p in (project / "dist").iterdir()) == sorted(
        ["manifest.json", entries["layer"]["file"], entries["function"]["file"]]
    )


def test_several_functions_share_one_layer(
    tmp_path: Path, index: FakeIndex, fake: ArchiveJobsRunner
) -> None:
    root = make_tree(
        tmp_path / "multi",
        {
            "orders/requirements.txt": "six==1.16.0\n",
            "orders/src/orders.py": "import six\n",
            "billing/requirements.txt": "idna==3.6\nsix>=1.15\n",
            "billing/src/billing.py": "import idna\n",
            "pyproject.toml": (
                '[tool.nativebuild]\nkind = "split"\nname = "shared"\n'
                '[[tool.nativebuild.functions]]\nname = "orders"\n'
                'requirements = "orders/requirements.txt"\nsrc = "orders/src"\n'
                '[[tool.nativebuild.functions]]\nname = "billing"\n'
                'requirements = "billing/requirements.txt"\nsrc = "billing/src"\n'
            ),
        },
    )
    args = [
        "build", "--project", str(root), "--runtime", "python3.9", "--build-image", IMAGE,
        "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    assert result.exit_code == 0, result.stderr
    archives = {Path(a["path"]).name: a for a in json.loads(result.stdout)["archives"]}
    assert sorted(archives) == [
        "billing-python3.9-x86_64.zip",
        "orders-python3.9-x86_64.zip",
        "shared-layer-python3.9-x86_64.zip",
    ]
    layer = archives["shared-layer-python3.9-x86_64.zip"]
    assert {"python/six/__init__.py", "python/idna/__init__.py"} <= set(names(layer))
    assert names(archives["orders-python3.9-x86_64.zip"]) == ["orders.py"]
    assert names(archives["billing-python3.9-x86_64.zip"]) == ["billing.py"]
    assert archives["orders-python3.9-x86_64.zip"]["layers"] == [
        "shared-layer-python3.9-x86_64.zip"
    ]


def test_functions_that_cannot_share_a_layer_are_named(
    tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    root = make_tree(
        tmp_path / "multi",
        {
            "a.txt": "six==1.16.0\n",
            "b.txt": "idna\nsix==1.15.0\n",
            "pyproject.toml": (
                '[tool.nativebuild]\nkind = "split"\n'
                '[[tool.nativebuild.functions]]\nname = "a"\nrequirements = "a.txt"\n'
                '[[tool.nativebuild.functions]]\nname = "b"\nrequirements = "b.txt"\n'
            ),
        },
    )
    args = [
        "build",
        "--project",
        str(root),
        "--runtime",
        "python3.9",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    assert result.exit_code == 5, result.stderr
    assert "cannot share one layer" in result.stderr
    assert "six: a needs six==1.16.0" in result.stderr
    assert "b.txt:2" in result.stderr
    assert fake.containers_started == 0
    assert not (root / "dist").exists()


def test_compile_ships_checked_hash_pycs_cached_and_reproducible(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    code, cold, err = build(project, tmp_path / "cache", "--kind", "split", "--compile")
    assert code == 0, err
    archives = by_kind(cold)
    function = archives["function"]
    with zipfile.ZipFile(function["path"]) as zf:
        pyc = zf.read("__pycache__/handler.cpython-39.pyc")
        source = zf.read("handler.py")
    import importlib.util

    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based and checked
    assert pyc[8:16] == importlib.util.source_hash(source)
    assert b"/var/task/handler.py" in pyc
    layer_names = names(archives["layer"])
    assert "python/six/__pycache__/__init__.cpython-39.pyc" in layer_names
    with zipfile.ZipFile(archives["layer"]["path"]) as zf:
        assert b"/opt/python/six/__init__.py" in zf.read(
            "python/six/__pycache__/__init__.cpython-39.pyc"
        )
    assert function["bytecode"] == "checked-hash"
    jobs_before = len(fake.archive_jobs)
    code, warm, err = build(project, tmp_path / "cache", "--kind", "split", "--compile")
    assert code == 0, err
    assert warm["containers_started"] == 0
    assert len(fake.archive_jobs) == jobs_before
    assert [a["sha256"] for a in warm["archives"]] == [a["sha256"] for a in cold["archives"]]
    # A code change recompiles your source only.
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    code, changed, err = build(project, tmp_path / "cache", "--kind", "split", "--compile")
    assert code == 0, err
    assert [len(j["compile"]) for j in fake.archive_jobs[jobs_before:]] == [1]
    assert by_kind(changed)["layer"]["sha256"] == archives["layer"]["sha256"]


def test_slimming_removes_and_lists_but_keeps_metadata_and_vendor_binaries(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    _, plain, _ = build(project, tmp_path / "cache")
    with zipfile.ZipFile(plain["archives"][0]["path"]) as old:
        old_speedups, old_core = old.read("markupsafe/_speedups.so"), old.read("native/_core.so")
    code, slim, err = build(
        project, tmp_path / "cache", "--slim", "tests,docs,strip", "--exclude", "*.txt"
    )
    assert code == 0, err
    (before,), (after,) = plain["archives"], slim["archives"]
    listing = names(after)
    assert "native/tests/test_native.py" not in listing
    assert "native/docs/guide.rst" not in listing
    assert "notes.txt" not in listing  # your own file, by --exclude
    assert "native-1.0.dist-info/top_level.txt" in listing  # .dist-info is never slimmed
    assert after["unzipped_size"] < before["unzipped_size"]
    reasons = {item["path"]: item["reason"] for item in after["removed"]}
    assert reasons == {
        "native/tests/test_native.py": "tests",
        "native/docs/guide.rst": "docs",
        "notes.txt": "exclude *.txt",
    }
    with zipfile.ZipFile(after["path"]) as new:
        # Only what nativebuild compiled is stripped; the vendor's binary is untouched.
        assert len(new.read("markupsafe/_speedups.so")) < len(old_speedups)
        assert new.read("native/_core.so") == old_core
    (stripped,) = after["stripped"]
    assert stripped["wheel"].startswith("markupsafe-2.1.5")
    assert "removed 1 files" in err


def test_runtime_provided_packages_are_left_out_unless_included(
    project: Path, tmp_path: Path, fake: ArchiveJobsRunner
) -> None:
    (project / "requirements.txt").write_text("boto3==1.35.0\nsix==1.16.0\n")
    code, result, err = build(project, tmp_path / "cache", "--slim", "runtime-provided")
    assert code == 0, err
    listing = names(result["archives"][0])
    assert not [n for n in listing if n.startswith("boto3")]  # code and .dist-info
    assert not [n for n in listing if n.startswith("six")]  # six ships with the runtime too
    assert {w["name"] for w in result["archives"][0]["wheels"]} == set()
    code, kept, err = build(
        project, tmp_path / "cache", "--slim", "runtime-provided", "--include", "boto3"
    )
    assert code == 0, err
    assert "boto3/__init__.py" in names(kept["archives"][0])


def _zeros_wheel(index: FakeIndex, name: str, size: int) -> None:
    """A wheel with one large, highly compressible file: 'large' without costing disk."""
    path = index.root / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        with zf.open(f"{name}/blob.bin", "w", force_zip64=False) as out:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                out.write(chunk)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    index.files[name] = IndexFile(name, "1.0", path, sha, ())


def test_over_the_unzipped_budget_fails_with_the_listing_and_writes_nothing(
    project: Path, tmp_path: Path, index: FakeIndex, fake: ArchiveJobsRunner
) -> None:
    _zeros_wheel(index, "bigarrow", 150 << 20)
    _zeros_wheel(index, "bigpandas", 110 << 20)
    (project / "requirements.txt").write_text("bigarrow==1.0\nbigpandas==1.0\nsix==1.16.0\n")
    code, _, err = build(project, tmp_path / "cache", "--kind", "split")
    assert code == 11, err
    assert "over Lambda's limit of 262,144,000 bytes" in err
    listing = err.split("Largest packages:")[1]
    assert listing.index("bigarrow 1.0") < listing.index("bigpandas 1.0") < listing.index("six")
    assert "--slim" in err
    assert not (project / "dist").exists() or not list((project / "dist").glob("*.zip"))


def test_layers_built_elsewhere_count_in_the_budget(
    project: Path, tmp_path: Path, index: FakeIndex, fake: ArchiveJobsRunner
) -> None:
    _zeros_wheel(index, "bigarrow", 150 << 20)
    other = tmp_path / "other-layer.zip"
    with (
        zipfile.ZipFile(other, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("python/blob.bin", "w") as out,
    ):
        for _ in range(120):
            out.write(bytes(1 << 20))
    (project / "requirements.txt").write_text("bigarrow==1.0\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 0, err
    code, _, err = build(project, tmp_path / "cache", "--with-layer", str(other))
    assert code == 11
    assert "other-layer.zip" in err
