"""``--kind image`` through the CLI on real files, with a fake engine (tests/fakes.py) that
saves a small runtime image and loads tarballs the way Docker 20.10 does: layers whose chain it
already holds are never read, every other one must be in the stream and match its diff_id."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.errors import ContainerError
from tests.fakes import FakeIndex, FakeRunner
from tests.functional.image_project import (
    RUNTIME_IMAGE,
    build,
    fake_engine,
    image_index,
    layer_files,
    make_project,
    members,
    ok,
)
from tests.wheelfactory import make_wheel

BIG = 40 * 1024 * 1024  # over LARGE_PACKAGE: a layer of its own


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    return image_index(tmp_path)


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    return fake_engine(index, monkeypatch)


def test_image_tarball_is_an_oci_layout_and_a_docker_archive(
    tmp_path: Path, fake: FakeRunner
) -> None:
    project = make_project(tmp_path / "project")
    result = ok(build(project, tmp_path / "cache"))
    (archive,) = result["archives"]
    assert archive["kind"] == "image"
    path = Path(archive["path"])
    assert path.name == "orders-python3.9-x86_64.tar"
    files = members(path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["orders:python3.9-x86_64"]
    config_bytes = files[entry["Config"]]
    assert archive["image_id"] == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["config"]["Cmd"] == ["handler.handler"]
    assert config["config"]["Entrypoint"] == ["/lambda-entrypoint.sh"]  # the runtime image's
    assert config["created"] == "1980-01-01T00:00:00Z"
    assert "container" not in config
    assert "docker_version" not in config
    # Every blob is named by its digest; the diff_ids are the layers' uncompressed digests.
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(files[layer])).hexdigest()
        for layer in entry["Layers"]
    ]
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert len(config["history"]) == len(diff_ids)
    # The OCI side names the same manifest, config and layers.
    (described,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(files["blobs/sha256/" + described["digest"].removeprefix("sha256:")])
    assert manifest["config"]["digest"] == archive["image_id"]
    assert ["blobs/sha256/" + l["digest"][7:] for l in manifest["layers"]] == entry["Layers"]
    assert {l["mediaType"] for l in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    assert described["annotations"]["io.containerd.image.name"] == "orders:python3.9-x86_64"
    assert archive["image"]["manifest_digest"] == described["digest"]


def test_layers_hold_the_function_at_var_task_owned_by_root(
    tmp_path: Path, fake: FakeRunner
) -> None:
    project = make_project(tmp_path / "project")
    result = ok(build(project, tmp_path / "cache"))
    (archive,) = result["archives"]
    layers = archive["image"]["layers"]
    assert [(l["role"], l["name"]) for l in layers] == [
        ("dependencies", "dependencies"),
        ("code", "code"),
    ]
    assert layers[0]["packages"] == ["markupsafe 2.1.5", "six 1.16.0"]
    files = members(Path(archive["path"]))
    deps = layer_files(files["blobs/sha256/" + layers[0]["digest"][7:]])
    code = layer_files(files["blobs/sha256/" + layers[1]["digest"][7:]])
    assert "var/task/six/__init__.py" in deps
    assert "var/task/markupsafe/_speedups.so" in deps
    assert sorted(code) == [
        "var", "var/task", "var/task/handler.py", "var/task/lib", "var/task/lib/util.py"
    ]  # fmt: skip
    for info in [*deps.values(), *code.values()]:
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
        assert info.mtime == 315532800
        assert info.mode == (0o755 if info.isdir() else 0o644)
    names = list(deps)
    assert names == sorted(names)  # parents before children


def test_same_inputs_give_the_same_image_from_any_directory(
    tmp_path: Path, fake: FakeRunner
) -> None:
    first = ok(build(make_project(tmp_path / "one"), tmp_path / "cache-one"))["archives"][0]
    second = ok(build(make_project(tmp_path / "two"), tmp_path / "cache-two"))["archives"][0]
    assert first["image_id"] == second["image_id"]
    assert first["sha256"] == second["sha256"]
    assert Path(first["path"]).read_bytes() == Path(second["path"]).read_bytes()
    again = ok(build(tmp_path / "one", tmp_path / "cache-one"))["archives"][0]  # warm
    assert again["sha256"] == first["sha256"]
    epoch = ok(
        build(tmp_path / "one", tmp_path / "cache-one", env={"SOURCE_DATE_EPOCH": "1700000000"})
    )
    assert epoch["archives"][0]["image_id"] != first["image_id"]  # the time is an input


def test_a_code_change_changes_only_the_code_layer(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    before = ok(build(project, tmp_path / "cache"))["archives"][0]["image"]
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    after = ok(build(project, tmp_path / "cache"))["archives"][0]["image"]
    assert after["id"] != before["id"]
    assert after["base"] == before["base"]
    assert after["layers"][0] == before["layers"][0]
    assert after["layers"][1]["digest"] != before["layers"][1]["digest"]
    assert fake.saves == [RUNTIME_IMAGE.format(arch="x86_64")]  # the runtime image read once


def test_a_large_package_gets_a_layer_of_its_own(
    tmp_path: Path, fake: FakeRunner, index: FakeIndex
) -> None:
    big = make_wheel(
        index.root, "bigpkg", "1.0", {"bigpkg/__init__.py": "", "bigpkg/data.bin": b"\0" * BIG}
    )
    index.adopt(big, "bigpkg", "1.0")
    project = make_project(tmp_path / "project", "six==1.16.0\nbigpkg==1.0\n")
    before = ok(build(project, tmp_path / "cache"))["archives"][0]["image"]["layers"]
    assert [(l["role"], l["name"]) for l in before] == [
        ("dependencies", "bigpkg 1.0"),
        ("dependencies", "dependencies"),
        ("code", "code"),
    ]
    (project / "requirements.txt").write_text("six==1.16.0\nbigpkg==1.0\nidna==3.6\n")
    after = ok(build(project, tmp_path / "cache"))["archives"][0]["image"]["layers"]
    assert after[0] == before[0]  # the big package is not sent again
    assert after[1]["digest"] != before[1]["digest"]
    assert after[2] == before[2]


def test_load_sends_only_the_layers_the_engine_lacks(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    first = ok(build(project, tmp_path / "cache", "--load"))["archives"][0]
    assert first["image"]["loaded"] is True
    loaded = fake.images["orders:python3.9-x86_64"]
    assert loaded.id == first["image_id"]
    assert fake.loads[-1]["layers_sent"] == 2  # the runtime image's layer was held
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 3\n")
    second = ok(build(project, tmp_path / "cache", "--load"))["archives"][0]
    assert fake.images["orders:python3.9-x86_64"].id == second["image_id"]
    assert fake.loads[-1]["layers_sent"] == 1  # the code layer only


def test_load_retries_in_full_when_the_engine_lost_a_layer(
    tmp_path: Path, fake: FakeRunner
) -> None:
    project = make_project(tmp_path / "project")
    ok(build(project, tmp_path / "cache", "--load"))
    fake.held.clear()  # pruned behind our back: the inspected image no longer backs its layers
    result = ok(build(project, tmp_path / "cache", "--load"))["archives"][0]
    assert fake.images["orders:python3.9-x86_64"].id == result["image_id"]
    assert fake.loads[-1]["layers_sent"] == 3


def test_a_refused_load_fails_the_build_and_the_tarball_is_still_whole(
    tmp_path: Path, fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load runs while the tarball is written, from the same blobs: its failure is the
    build's, and the tarball it leaves is the one a build without --load writes."""
    project = make_project(tmp_path / "project")
    streams: list[bytes] = []

    def refuse(data: Iterable[bytes]) -> tuple[str, ...]:
        streams.append(b"".join(data))
        msg = "The engine refused to load the image: no space left on device"
        raise ContainerError(msg)

    loads = fake.load_image
    monkeypatch.setattr(fake, "load_image", refuse)
    failed = build(project, tmp_path / "cache", "--load")
    assert failed.exit_code == ContainerError.exit_code, failed.output
    assert "no space left on device" in failed.output
    assert len(streams) == 2  # the runtime image's layer was held: retried in full
    tarball = project / "dist" / "orders-python3.9-x86_64.tar"
    written = tarball.read_bytes()
    monkeypatch.setattr(fake, "load_image", loads)
    ok(build(project, tmp_path / "cache"))
    assert tarball.read_bytes() == written


def test_manifest_records_the_image(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    result = ok(build(project, tmp_path / "cache", "--load"))
    manifest = json.loads((project / "dist" / "manifest.json").read_text())
    (entry,) = manifest["archives"]
    assert entry["kind"] == "image"
    assert entry["file"] == "orders-python3.9-x86_64.tar"
    assert entry["image_id"] == result["archives"][0]["image_id"]
    image = entry["image"]
    assert "loaded" not in image  # what was built, not what was then done with it
    assert image["base"]["ref"] == RUNTIME_IMAGE.format(arch="x86_64")
    assert image["base"]["id"] == fake.images[RUNTIME_IMAGE.format(arch="x86_64")].id
    assert [l["size"] for l in image["base"]["layers"]] == [
        len(
            members(Path(result["archives"][0]["path"]))[
                "blobs/sha256/" + image["base"]["layers"][0]["digest"][7:]
            ]
        )
    ]
    assert all(set(l) >= {"digest", "diff_id", "size"} for l in image["layers"])


def test_an_image_over_lambdas_limit_is_refused_before_writing(
    tmp_path: Path, fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nativebuild.archive.image.IMAGE_LIMIT", 1000)
    project = make_project(tmp_path / "project")
    result = build(project, tmp_path / "cache")
    assert result.exit_code == 11, result.stderr
    assert "over Lambda's 1,000-byte limit for an image" in result.stderr
    assert "six 1.16.0" in result.stderr
    assert not (project / "dist").exists() or not list((project / "dist").glob("*.tar"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--handler", "nope"), "must look like module.function"),
        (("--kind", "function", "--load"), "--load loads an image"),
        (("--verify",), "--verify checks .zip archives"),
        (("--with-layer", "layer.zip"), "cannot use Lambda layers"),
    ],
)
def test_bad_image_settings(
    tmp_path: Path, fake: FakeRunner, extra: tuple[str, ...], message: str
) -> None:
    result = build(make_project(tmp_path / "project"), tmp_path / "cache", *extra)
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_image_needs_a_handler(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    args = [
        "build", "-r", str(project / "requirements.txt"), "--kind", "image",
        "--runtime", "python3.9", "--cache-dir", str(tmp_path / "cache"), "--project", str(project),
    ]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2
    assert "--handler" in result.stderr
    assert not fake.specs  # refused before any work


def test_corrupt_cached_blob_is_caught_and_evicted(tmp_path: Path, fake: FakeRunner) -> None:
    project = make_project(tmp_path / "project")
    first = ok(build(project, tmp_path / "cache"))["archives"][0]
    digest = first["image"]["base"]["layers"][0]["digest"][7:]
    (blob,) = (tmp_path / "cache").rglob(f"{digest}/blob.tar.gz")
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-10] + b"corrupted!")
    result = build(project, tmp_path / "cache")
    assert result.exit_code == 11
    assert "is not sha256:" in result.stderr
    assert not blob.exists()  # evicted: the next build reads the runtime image again
    again = ok(build(project, tmp_path / "cache"))["archives"][0]
    assert again["sha256"] == first["sha256"]
    shutil.rmtree(project / "dist")


def test_sam_image_hook_builds_and_loads_under_sams_tag(tmp_path: Path, fake: FakeRunner) -> None:
    from nativebuild.config.settings import Settings
    from nativebuild.pipeline.project import build_sam_image
    from nativebuild.reporting import NullReporter
    from nativebuild.targets import Architecture, GlibcVersion

    project = make_project(tmp_path / "project")
    settings = Settings(
        runtime="python3.9", archs=(Architecture.ARM64,), requirements=project / "requirements.txt",
        src=project / "app", output=project / ".aws-sam" / "build" / "OrdersFunction",
        cache_dir=tmp_path / "cache", build_image="example/build:{arch}",
        runtime_image=RUNTIME_IMAGE, glibc=GlibcVersion(major=2, minor=31),
        name="OrdersFunction", handler="handler.handler",
    )  # fmt: skip
    built = build_sam_image(
        settings, tag="ordersfunction:latest", runner=fake, env={}, reporter=NullReporter()
    )
    assert built.image_uri == "ordersfunction:latest"
    assert fake.images["ordersfunction:latest"].id == built.image_id
    assert built.record.path.parent == settings.output
    assert built.record.arch == "arm64"
