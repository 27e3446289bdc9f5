"""manifest.json: what deployment tools read, written atomically and deterministically."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from nativebuild.archive.manifest import (
    MANIFEST_NAME,
    SCHEMA,
    ArchiveRecord,
    WheelEntry,
    manifest_document,
    write_manifest,
)
from nativebuild.archive.slim import Removal
from nativebuild.archive.strip import Stripped
from nativebuild.errors import ArchiveError
from tests.conftest import ROOT_IGNORES_MODES

SHA = hashlib.sha256(b"zip bytes").hexdigest()


def record(output: Path, **changes: object) -> ArchiveRecord:
    fields: dict[str, object] = {
        "path": output / "app-python3.12-arm64.zip", "sha256": SHA, "size": 1234,
        "runtime": "python3.12", "arch": "arm64", "kind": "function", "name": "app",
        "code_sha256": base64.b64encode(bytes.fromhex(SHA)).decode(), "unzipped_size": 5678,
        "files": 9, "layers": ("app-layer-python3.12-arm64.zip",), "bytecode": "checked-hash",
        "build_image": "public.ecr.aws/sam/build-python3.12:latest-arm64",
        "build_image_id": "sha256:" + "b" * 64,
        "runtime_image": "public.ecr.aws/lambda/python:3.12-arm64@sha256:" + "c" * 64,
        "wheels": (
            WheelEntry(
                name="markupsafe", version="2.1.5", filename="markupsafe-2.1.5-cp312-cp312-linux_aarch64.whl",
                sha256="d" * 64, source="compiled", url="https://files.example/markupsafe-2.1.5.tar.gz",
                sdist="markupsafe-2.1.5.tar.gz", sdist_sha256="e" * 64,
            ),
        ),
        "slim_rules": ("tests", "strip"),
        "removed": (Removal(path="a/tests/t.py", owner="a 1", size=10, reason="tests"),) * 3,
        "stripped": (Stripped(wheel="m.whl", files=2, before=100, after=40),),
    }  # fmt: skip
    fields.update(changes)
    return ArchiveRecord(**fields)  # type: ignore[arg-type]


def test_function_entry(tmp_path: Path) -> None:
    (entry,) = manifest_document([record(tmp_path)], tmp_path)["archives"]
    assert entry["file"] == "app-python3.12-arm64.zip"
    assert entry["code_sha256"] == base64.b64encode(hashlib.sha256(b"zip bytes").digest()).decode()
    assert (entry["kind"], entry["runtime"], entry["architecture"]) == (
        "function", "python3.12", "arm64",
    )  # fmt: skip
    assert entry["layer"] is None
    assert entry["layers"] == ["app-layer-python3.12-arm64.zip"]
    assert entry["direct_upload"] is True
    assert entry["images"]["runtime"]["digest"] == "sha256:" + "c" * 64
    assert entry["images"]["build"] == {
        "ref": "public.ecr.aws/sam/build-python3.12:latest-arm64",
        "id": "sha256:" + "b" * 64,
    }
    assert entry["wheels"][0]["sdist"] == "markupsafe-2.1.5.tar.gz"
    assert entry["wheels"][0]["source"] == "compiled"
    assert entry["slim"] == {
        "rules": ["tests", "strip"], "removed_files": 3, "removed_bytes": 30, "stripped_files": 2,
    }  # fmt: skip


def test_layer_entry_carries_what_publish_layer_version_needs(tmp_path: Path) -> None:
    layer = record(
        tmp_path, kind="layer", path=tmp_path / "app-layer-python3.12-arm64.zip", layers=(),
        layer_layout="python", compatible_runtimes=("python3.12",),
        compatible_architectures=("arm64",), mount="/opt", size=60 * 1024 * 1024,
    )  # fmt: skip
    (entry,) = manifest_document([layer], tmp_path)["archives"]
    assert entry["layer"] == {
        "layout": "python", "compatible_runtimes": ["python3.12"],
        "compatible_architectures": ["arm64"],
    }  # fmt: skip
    assert entry["mount"] == "/opt"
    assert entry["direct_upload"] is False  # 60 MiB: through S3


def test_document_is_sorted_and_free_of_machine_details(tmp_path: Path) -> None:
    later = record(tmp_path, path=tmp_path / "z.zip")
    earlier = record(tmp_path, path=tmp_path / "a.zip")
    document = manifest_document([later, earlier], tmp_path)
    assert document["schema"] == SCHEMA
    assert [a["file"] for a in document["archives"]] == ["a.zip", "z.zip"]
    assert str(tmp_path) not in json.dumps(document)


def test_written_atomically_and_reproducibly(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    (output).mkdir()
    (output / MANIFEST_NAME).write_text("old")
    path = write_manifest([record(output)], output)
    first = path.read_bytes()
    assert path == output / MANIFEST_NAME
    assert json.loads(first)["archives"][0]["name"] == "app"
    assert sorted(p.name for p in output.iterdir()) == [MANIFEST_NAME]  # no temp file left
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    write_manifest([record(output)], output)
    assert path.read_bytes() == first


@pytest.mark.skipif(os.geteuid() == 0, reason=ROOT_IGNORES_MODES)
def test_unwritable_output_is_an_archive_error(tmp_path: Path) -> None:
    output = tmp_path / "ro"
    output.mkdir()
    output.chmod(0o555)
    try:
        with pytest.raises(ArchiveError, match="Cannot write"):
            write_manifest([record(output)], output)
    finally:
        output.chmod(0o755)


def test_output_that_is_a_file_is_an_archive_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArchiveError, match="Cannot write"):
        write_manifest([record(blocker)], blocker)
