"""The pure parts of images: tar headers and gzip framing, layer grouping and members, config,
manifests and digests, the size limit (nativebuild.archive.tarwriter, nativebuild.archive.image)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from nativebuild.archive.image import (
    IMAGE_LIMIT,
    BaseImage,
    BaseLayer,
    BuiltLayer,
    Descriptor,
    LayerPlan,
    check_image_size,
    created_time,
    docker_manifest,
    image_config,
    image_index,
    image_manifest,
    layer_descriptor,
    layer_members,
    package_rows,
    parse_handler,
    split_layers,
)
from nativebuild.archive.plan import ArchiveEntry, ArchivePlan, SourceFile
from nativebuild.archive.tarwriter import LayerWriter, TarFormatError, member_header
from nativebuild.errors import ArchiveError, ConfigError

MB = 1024 * 1024


def entry(path: str, owner: str = "", size: int = 10, mode: int = 0o644) -> ArchiveEntry:
    return ArchiveEntry(
        path=path, mode=mode, source=SourceFile(path=Path("/dev/null")), owner=owner, size=size
    )


def plan(*entries: ArchiveEntry) -> ArchivePlan:
    return ArchivePlan(
        entries=tuple(sorted(entries, key=lambda e: e.path)), interpreter="/var/lang/bin/python3.9"
    )


def write(
    members: list[tuple[str, bytes | None, int]], *, mtime: int = 0
) -> tuple[bytes, str, str]:
    out = io.BytesIO()
    writer = LayerWriter(out, mtime=mtime)
    for path, data, mode in members:
        if data is None:
            writer.add_dir(path, mode=mode)
        else:
            writer.add_bytes(path, data, mode=mode)
    digests = writer.finish()
    return out.getvalue(), digests.diff_id, digests.digest


# --- tarwriter ----------------------------------------------------------------------------------


LONG = "var/task/" + "/".join(["a-rather-long-directory-name"] * 6) + "/module.py"
UNICODE = "var/task/données/été.py"


def test_layer_reads_back_with_fixed_owner_time_and_modes() -> None:
    blob, diff_id, digest = write(
        [("var", None, 0o755), ("var/task", None, 0o755), ("var/task/a.py", b"x = 1\n", 0o644),
         ("var/task/run", b"#!/bin/sh\n", 0o755), (LONG, b"long\n", 0o644), (UNICODE, b"u\n", 0o644)],
        mtime=315532800,
    )  # fmt: skip
    plain = gzip.decompress(blob)
    assert diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        infos = archive.getmembers()
        assert [i.name for i in infos] == [
            "var",
            "var/task",
            "var/task/a.py",
            "var/task/run",
            LONG,
            UNICODE,
        ]
        for info in infos:
            assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (
                0,
                0,
                "",
                "",
                315532800,
            )
        assert [i.mode for i in infos] == [0o755, 0o755, 0o644, 0o755, 0o644, 0o644]
        assert infos[0].isdir()
        assert infos[2].isfile()
        assert archive.extractfile(LONG).read() == b"long\n"  # type: ignore[union-attr]
    assert len(plain) % 512 == 0
    assert plain.endswith(b"\0" * 1024)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
def test_gnu_tar_reads_the_same_members(tmp_path: Path) -> None:
    blob, _, _ = write(
        [("var/task", None, 0o755), (LONG, b"long\n", 0o644), (UNICODE, b"u\n", 0o644)]
    )
    (tmp_path / "layer.tar").write_bytes(gzip.decompress(blob))
    listing = subprocess.run(
        ["tar", "-tf", str(tmp_path / "layer.tar")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listing == ["var/task/", LONG, UNICODE]


def test_same_members_same_bytes_and_gzip_has_no_timestamp() -> None:
    members: list[tuple[str, bytes | None, int]] = [("var/task/a.py", b"a" * 5000, 0o644)]
    first, _, _ = write(members)
    assert write(members) == write(members)
    assert first[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # mtime 0, OS unknown
    assert write(members, mtime=1)[0] != first
    assert write([("var/task/a.py", b"a" * 5000, 0o755)])[0] != first


def test_a_name_ustar_cannot_hold_gets_a_pax_record() -> None:
    short = member_header("var/task/a.py", mode=0o644, size=1, mtime=0, directory=False)
    assert len(short) == 512  # USTAR alone
    unsplittable = "var/" + "x" * 150 + ".py"
    header = member_header(unsplittable, mode=0o644, size=1, mtime=0, directory=False)
    assert len(header) == 512 * 3
    assert f"path={unsplittable}".encode() in header
    assert f"path={UNICODE}".encode() in member_header(
        UNICODE, mode=0o644, size=1, mtime=0, directory=False
    )


def test_a_size_over_the_octal_field_goes_in_pax() -> None:
    header = member_header("big.bin", mode=0o644, size=9 * 1024**3, mtime=0, directory=False)
    assert b"size=9663676416\n" in header
    assert header[-512:][124:136] == b"00000000000\0"


def test_checksum_is_what_readers_compute() -> None:
    header = member_header("var/task/a.py", mode=0o644, size=3, mtime=7, directory=False)
    info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")  # validates the checksum
    assert (info.name, info.size, info.mtime) == ("var/task/a.py", 3, 7)


@pytest.mark.parametrize("path", ["", "/abs", "a\0b"])
def test_bad_names_are_refused(path: str) -> None:
    with pytest.raises(TarFormatError):
        member_header(path, mode=0o644, size=0, mtime=0, directory=False)


def test_a_stream_of_the_wrong_length_is_refused() -> None:
    writer = LayerWriter(io.BytesIO(), mtime=0)
    with pytest.raises(TarFormatError, match="expected"):
        writer.add_stream("a", io.BytesIO(b"abc"), size=4, mode=0o644)
    writer = LayerWriter(io.BytesIO(), mtime=0)
    with pytest.raises(TarFormatError, match="longer"):
        writer.add_stream("a", io.BytesIO(b"abcde"), size=4, mode=0o644)


# --- layers -------------------------------------------------------------------------------------


def test_split_layers_big_packages_alone_the_rest_shared_code_last() -> None:
    layers = split_layers(
        plan(
            entry("numpy/core.so", "numpy 2.0.1", 60 * MB),
            entry("pandas/core.so", "pandas 2.2.0", 80 * MB),
            entry("six.py", "six 1.16.0", 30_000),
            entry("idna/__init__.py", "idna 3.6", 1000),
            entry("handler.py", "", 100),
        ),
        large=32 * MB,
    )
    assert [(l.name, l.role) for l in layers] == [
        ("numpy 2.0.1", "dependencies"),
        ("pandas 2.2.0", "dependencies"),
        ("dependencies", "dependencies"),
        ("code", "code"),
    ]
    assert layers[2].packages == ("idna 3.6", "six 1.16.0")
    assert [e.path for e in layers[3].entries] == ["handler.py"]


def test_split_layers_keeps_the_largest_when_too_many_are_big() -> None:
    entries = [entry(f"p{i}/x.so", f"p{i} 1", (40 + i) * MB) for i in range(5)]
    layers = split_layers(plan(*entries), large=32 * MB, max_own=2)
    assert [l.name for l in layers] == ["p3 1", "p4 1", "dependencies"]
    assert layers[2].packages == ("p0 1", "p1 1", "p2 1")


def test_split_layers_makes_no_empty_layer() -> None:
    assert [l.name for l in split_layers(plan(entry("handler.py")))] == ["code"]
    assert [l.name for l in split_layers(plan(entry("six.py", "six 1")))] == ["dependencies"]
    assert split_layers(plan()) == ()


def test_layer_members_write_every_parent_directory_in_order() -> None:
    members = layer_members([entry("pkg/sub/mod.py"), entry("pkg-extra.py"), entry("a.py")])
    assert [(m.path, m.entry is None) for m in members] == [
        ("var", True),
        ("var/task", True),
        ("var/task/a.py", False),
        ("var/task/pkg", True),
        ("var/task/pkg-extra.py", False),
        ("var/task/pkg/sub", True),
        ("var/task/pkg/sub/mod.py", False),
    ]


def test_package_rows_largest_first_with_their_layer() -> None:
    layers = split_layers(
        plan(entry("six.py", "six 1", 5), entry("big/x", "big 1", 50), entry("h.py")), large=40
    )
    assert package_rows(layers) == [
        ("big 1", "big 1", 1, 50),
        ("your source", "code", 1, 10),
        ("six 1", "dependencies", 1, 5),
    ]


# --- config, manifest, index --------------------------------------------------------------------

BASE_CONFIG = {
    "architecture": "arm64",
    "variant": "v8",
    "os": "linux",
    "created": "2026-01-01T00:00:00Z",
    "container": "4f1e",
    "container_config": {"Cmd": ["/bin/sh"]},
    "docker_version": "20.10.24",
    "config": {"Env": ["PATH=/var/lang/bin"], "Entrypoint": ["/lambda-entrypoint.sh"], "Cmd": None,
               "WorkingDir": "/var/task"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
    "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "ADD x /"}],
}  # fmt: skip


def base(config: dict[str, object] | None = None) -> BaseImage:
    raw = json.dumps(config or BASE_CONFIG).encode()
    return BaseImage(
        ref="public.ecr.aws/lambda/python:3.12-arm64",
        id="sha256:" + hashlib.sha256(raw).hexdigest(),
        repo_digest=None,
        config=raw,
        layers=(BaseLayer(diff_id="sha256:" + "a" * 64, digest="sha256:" + "b" * 64, size=5, uncompressed_size=MB),),
    )  # fmt: skip


def built(name: str, diff: str) -> BuiltLayer:
    return BuiltLayer(
        name=name, role="code" if name == "code" else "dependencies", diff_id="sha256:" + diff * 64,
        blob=layer_descriptor("sha256:" + diff.upper().lower() * 64, 10), uncompressed_size=20,
        files=1,
    )  # fmt: skip


def test_config_keeps_the_runtime_settings_and_sets_cmd() -> None:
    created = created_time(None)[1]
    raw = image_config(
        base(),
        [built("dependencies", "c"), built("code", "d")],
        handler="app.handler",
        created=created,
    )
    config = json.loads(raw)
    assert config["config"]["Cmd"] == ["app.handler"]
    assert config["config"]["Entrypoint"] == ["/lambda-entrypoint.sh"]
    assert config["config"]["Env"] == ["PATH=/var/lang/bin"]
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    assert config["created"] == "1980-01-01T00:00:00Z"
    assert not {"container", "container_config", "docker_version"} & set(config)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + c * 64 for c in "acd"]
    assert [h["created_by"] for h in config["history"]] == [
        "ADD x /",
        "nativebuild: dependencies (dependencies)",
        "nativebuild: code (code)",
    ]
    assert raw == json.dumps(config, sort_keys=True, separators=(",", ":")).encode()  # canonical


def test_config_bytes_depend_only_on_their_inputs() -> None:
    layers = [built("code", "d")]
    one = image_config(base(), layers, handler="a.b", created="x")
    assert one == image_config(base(), layers, handler="a.b", created="x")
    assert one != image_config(base(), layers, handler="a.c", created="x")
    assert one != image_config(base(), [built("code", "e")], handler="a.b", created="x")
    other_base = dict(BASE_CONFIG, config={"Env": ["X=1"]})
    assert one != image_config(base(other_base), layers, handler="a.b", created="x")


def test_without_a_handler_the_runtime_cmd_is_kept() -> None:
    config = json.loads(image_config(base(), [], handler=None, created="x"))
    assert config["config"]["Cmd"] is None


def test_a_runtime_image_without_diff_ids_is_refused() -> None:
    broken = dict(BASE_CONFIG, rootfs={"type": "layers"})
    with pytest.raises(ArchiveError, match=r"rootfs\.diff_ids"):
        image_config(base(broken), [], handler=None, created="x")


def test_manifests_and_index_point_at_the_same_blobs() -> None:
    config = Descriptor(
        media_type="application/vnd.oci.image.config.v1+json", digest="sha256:" + "1" * 64, size=9
    )
    layers = [layer_descriptor("sha256:" + "2" * 64, 7)]
    manifest = json.loads(image_manifest(config, layers))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == {
        "mediaType": config.media_type,
        "digest": config.digest,
        "size": 9,
    }
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    docker = json.loads(docker_manifest(config, layers, ["orders:python3.12-arm64"]))
    assert docker == [{"Config": "blobs/sha256/" + "1" * 64, "RepoTags": ["orders:python3.12-arm64"],
                       "Layers": ["blobs/sha256/" + "2" * 64]}]  # fmt: skip
    described = Descriptor(media_type=manifest["mediaType"], digest="sha256:" + "3" * 64, size=100)
    index = json.loads(image_index(described, tag="python3.12-arm64", repository="orders"))
    assert index["manifests"][0]["digest"] == described.digest
    assert (
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        == "python3.12-arm64"
    )


def test_created_time_follows_source_date_epoch() -> None:
    assert created_time(None) == (315532800, "1980-01-01T00:00:00Z")
    assert created_time(1700000000) == (1700000000, "2023-11-14T22:13:20Z")
    assert created_time(-5) == (0, "1970-01-01T00:00:00Z")


# --- limits and settings ------------------------------------------------------------------------


def test_image_size_limit_lists_the_largest_packages() -> None:
    runtime = base()
    layers = [
        LayerPlan(
            name="dependencies",
            role="dependencies",
            entries=(entry("huge.bin", "huge 1", IMAGE_LIMIT),),
        )
    ]
    with pytest.raises(ArchiveError, match=r"over Lambda's 10,737,418,240-byte limit") as raised:
        check_image_size("orders.tar", runtime, layers)
    assert "huge 1" in str(raised.value)
    near = [
        LayerPlan(
            name="d", role="dependencies", entries=(entry("x", "x 1", int(IMAGE_LIMIT * 0.95)),)
        )
    ]
    assert "95%" in check_image_size("orders.tar", runtime, near)[0]
    assert check_image_size("orders.tar", runtime, []) == []


@pytest.mark.parametrize(
    "value", ["app.handler", "pkg.mod.main", "src/app.lambda_handler", " app.h "]
)
def test_handlers_accepted(value: str) -> None:
    assert parse_handler(value, "test") == value.strip()


@pytest.mark.parametrize(
    "value", ["app", "app.", ".handler", "app.handler()", "a..b", "app.1x", "a b.c"]
)
def test_handlers_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"module\.function"):
        parse_handler(value, "test")
