"""The warm no-op's record: a build with nothing changed is answered from it; any change that
could change an archive sends the build through the pipeline again."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nativebuild.config.settings import Settings
from nativebuild.pipeline import uptodate
from nativebuild.targets import Architecture

IMAGE = "example/build:x86_64"
IMAGE_ID = "sha256:" + "1" * 64


@dataclasses.dataclass
class World:
    root: Path
    settings: Settings
    env: dict[str, str]
    ids: dict[str, str | None]

    def image_id(self, ref: str, platform: str | None) -> str | None:
        return self.ids.get(ref)

    def record(self, **changes: Any) -> None:
        made = {
            "input_files": [self.root / "requirements.txt", self.root / "base.txt"],
            "input_trees": [self.root / "app"],
            "absent_files": [self.root / "pip.conf"],
            "images": {f"{IMAGE}|linux/amd64": IMAGE_ID},
            "outputs": [self.root / "dist" / "function.zip"],
            "result": {"archives": [{"path": "dist/function.zip"}], "containers_started": 2,
                       "wheels": [{"name": "markupsafe", "source": "compiled"}]},
        }  # fmt: skip
        made.update(changes)
        record = uptodate.capture(self.settings, self.env, **made)
        uptodate.write(uptodate.state_path(self.settings, self.env), record)

    def answer(self, settings: Settings | None = None) -> dict[str, Any] | None:
        return uptodate.up_to_date(settings or self.settings, self.env, image_ids=self.image_id)


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "handler.py").write_text("x = 1\n")
    (tmp_path / "requirements.txt").write_text(
        "-r base.txt\nmarkupsafe @ https://h/${TOKEN}/m.whl\n"
    )
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "function.zip").write_bytes(b"PK archive bytes")
    settings = Settings(
        requirements=tmp_path / "requirements.txt", src=tmp_path / "app",
        output=tmp_path / "dist", cache_dir=tmp_path / "cache", archs=(Architecture.X86_64,),
    )  # fmt: skip
    world = World(tmp_path, settings, {"TOKEN": "tok-secret-1", "PIP_INDEX_URL": "https://i"}, {})
    world.ids[IMAGE] = IMAGE_ID
    world.record()
    return world


def test_nothing_changed_answers_with_the_last_result_as_a_cache_hit(world: World) -> None:
    answer = world.answer()
    assert answer is not None
    assert answer["containers_started"] == 0
    assert answer["wheels"] == [{"name": "markupsafe", "source": "cache"}]
    assert answer["archives"] == [{"path": "dist/function.zip"}]


def test_a_touched_file_with_the_same_content_is_still_up_to_date(world: World) -> None:
    handler = world.root / "app" / "handler.py"
    os.utime(handler, ns=(1, 1))
    assert world.answer() is not None


def _edit(path: Path, text: str) -> Callable[[World], None]:
    return lambda w: (w.root / path).write_text(text)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_edit(Path("app/handler.py"), "x = 2\n"), "the source changed"),
        (_edit(Path("app/new.py"), ""), "a source file came"),
        (lambda w: (w.root / "app" / "handler.py").unlink(), "a source file went"),
        (_edit(Path("base.txt"), "six==1.17.0\n"), "an included requirements file changed"),
        (_edit(Path("pip.conf"), "[global]\n"), "a pip configuration file appeared"),
        (_edit(Path("dist/function.zip"), "PK other"), "the archive was replaced"),
        (lambda w: (w.root / "dist" / "function.zip").unlink(), "the archive is gone"),
        (lambda w: w.env.update(TOKEN="tok-2"), "a variable the requirements name changed"),  # noqa: S106
        (lambda w: w.env.update(PIP_INDEX_URL="https://j"), "pip's index changed"),
        (lambda w: w.env.update(SOURCE_DATE_EPOCH="1"), "the archive timestamps changed"),
        (lambda w: w.ids.update({IMAGE: "sha256:" + "2" * 64}), "the image was rebuilt"),
        (lambda w: w.ids.update({IMAGE: None}), "the engine does not know the image"),
        (
            lambda w: uptodate.state_path(w.settings, w.env).write_text("{not json"),
            "the record is unreadable",
        ),
    ],
)
def test_any_change_means_a_real_build(
    world: World, change: Callable[[World], None], why: str
) -> None:
    change(world)
    assert world.answer() is None, why


def test_other_settings_mean_a_real_build(world: World) -> None:
    assert world.answer(dataclasses.replace(world.settings, compile=True)) is None
    assert world.answer(dataclasses.replace(world.settings, slim=("tests",))) is None


def test_an_unconfirmed_image_never_matches(world: World) -> None:
    world.record(images={f"{IMAGE}|linux/amd64": "unconfirmed"})
    assert world.answer() is None


def test_records_are_kept_per_output_directory(world: World) -> None:
    other = dataclasses.replace(world.settings, output=world.root / "elsewhere")
    assert uptodate.state_path(other, world.env) != uptodate.state_path(world.settings, world.env)
    assert world.answer(other) is None


def test_no_secret_reaches_the_record(world: World) -> None:
    world.env["AWS_SECRET_ACCESS_KEY"] = "very-secret-value"  # noqa: S105
    world.record()
    text = uptodate.state_path(world.settings, world.env).read_text()
    assert "very-secret-value" not in text
    assert "tok-secret-1" not in text  # ${TOKEN}'s value is digested, never kept


def test_an_output_hashed_while_written_is_not_read_again(world: World) -> None:
    archive = world.root / "dist" / "function.zip"
    size = archive.stat().st_size
    written_sha = "f" * 64  # what the writer computed (not the file's real hash: proves no read)
    record = uptodate.capture(
        world.settings, world.env, input_files=[], input_trees=[], images={},
        outputs=[archive], result={}, written={archive: (size, written_sha)},
    )  # fmt: skip
    assert record["outputs"][str(archive)]["sha256"] == written_sha
    # A file of another size is not the one the build wrote: its own bytes are hashed.
    record = uptodate.capture(
        world.settings, world.env, input_files=[], input_trees=[], images={},
        outputs=[archive], result={}, written={archive: (size + 1, written_sha)},
    )  # fmt: skip
    assert record["outputs"][str(archive)] == uptodate.file_record(archive)
