"""Reading a runtime image out of what ``docker save`` streams: the classic layout (Docker up to
24) and the OCI one (Docker 25+, layers possibly gzip-compressed), each layer recompressed the
one nativebuild way (nativebuild.archive.base_image)."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from nativebuild.archive.base_image import config_diff_ids, read_saved, recompress, save_to
from nativebuild.errors import ArchiveError
from tests.fakes import fake_runtime_image, tar_of


def saved(tmp_path: Path, members: dict[str, bytes]) -> tarfile.TarFile:
    data = tar_of(members)
    path = tmp_path / "saved.tar"
    save_to((data[i : i + 1000] for i in range(0, len(data), 1000)), path)
    return tarfile.open(path)


def test_classic_and_oci_saves_give_the_same_blob(tmp_path: Path) -> None:
    config, layer = fake_runtime_image("example/runtime:x86_64")
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    classic = saved(
        tmp_path,
        {"x/layer.tar": layer, "c.json": config,
         "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["x/layer.tar"]}]).encode()},
    )  # fmt: skip
    got_config, layers = read_saved(classic, "example")
    assert got_config == config
    assert config_diff_ids(got_config, ref="example") == [diff_id]
    one = recompress(classic, layers[0], tmp_path / "one.gz", ref="example")
    (tmp_path / "oci").mkdir()
    squeezed = gzip.compress(layer, compresslevel=1, mtime=12345)  # another tool's gzip
    oci = saved(
        tmp_path / "oci",
        {f"blobs/sha256/{'1' * 64}": squeezed, f"blobs/sha256/{'2' * 64}": config,
         "manifest.json": json.dumps([{"Config": f"blobs/sha256/{'2' * 64}",
                                       "Layers": [f"blobs/sha256/{'1' * 64}"]}]).encode()},
    )  # fmt: skip
    _, oci_layers = read_saved(oci, "example")
    two = recompress(oci, oci_layers[0], tmp_path / "two.gz", ref="example")
    assert one.diff_id == two.diff_id == diff_id
    assert one.digest == two.digest
    assert (tmp_path / "one.gz").read_bytes() == (tmp_path / "two.gz").read_bytes()
    assert gzip.decompress((tmp_path / "one.gz").read_bytes()) == layer


def test_a_zstd_layer_is_refused(tmp_path: Path) -> None:
    archive = saved(
        tmp_path,
        {"l": b"\x28\xb5\x2f\xfd" + b"\0" * 20, "c.json": b"{}",
         "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l"]}]).encode()},
    )  # fmt: skip
    with pytest.raises(ArchiveError, match="zstd"):
        recompress(archive, "l", tmp_path / "out.gz", ref="example")


@pytest.mark.parametrize(
    "manifest",
    [
        b"not json",
        json.dumps([{"Config": "missing.json", "Layers": []}]).encode(),
        json.dumps([{"Config": "c.json", "Layers": ["../../etc/passwd"]}]).encode(),
        json.dumps(
            [{"Config": "c.json", "Layers": []}, {"Config": "c.json", "Layers": []}]
        ).encode(),
    ],
)
def test_what_is_not_one_saved_image_is_refused(tmp_path: Path, manifest: bytes) -> None:
    archive = saved(tmp_path, {"c.json": b"{}", "manifest.json": manifest})

    def read() -> None:
        _, layers = read_saved(archive, "example")
        for layer in layers:
            recompress(archive, layer, tmp_path / "out.gz", ref="example")

    with pytest.raises(ArchiveError):
        read()
