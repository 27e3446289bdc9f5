"""The quick index (nativebuild.pipeline.quick): an entry answers only the invocation it was kept
for, with nothing it depended on changed; its key, its checks and where it lives. (Through the
real console entry: tests/functional/test_quick_answer.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nativebuild.config.settings import Settings
from nativebuild.config.values import as_path, recording_paths
from nativebuild.pipeline import quick, uptodate
from nativebuild.targets import Architecture

IMAGE = "example/build:x86_64"
IMAGE_ID = "sha256:" + "1" * 64
OUTPUT: quick.Output = [("stderr", "==> Up to date\n"), ("stdout", "dist/function.zip\n")]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ids: dict[str, str | None] = {IMAGE: IMAGE_ID}
        self.argv = ("build", "--cache-dir", str(root / "cache"), "-o", "dist")
        self.env = {"HOME": str(root), "PIP_INDEX_URL": "https://i"}
        self.cwd = str(root)
        self.mode: tuple[Any, ...] = ((False, None), (False, None), (False, None))
        self.day = "2026-12-06"
        settings = Settings(
            requirements=root / "requirements.txt", src=root / "app", output=root / "dist",
            cache_dir=root / "cache", archs=(Architecture.X86_64,),
        )  # fmt: skip
        record = uptodate.capture(
            settings, self.env, input_files=[root / "requirements.txt"],
            input_trees=[root / "app"], images={f"{IMAGE}|linux/amd64": IMAGE_ID},
            outputs=[root / "dist" / "function.zip"], result={"archives": []},
        )  # fmt: skip
        self.record = uptodate.state_path(settings, self.env)
        uptodate.write(self.record, record)
        with recording_paths() as links:
            as_path("link", root)
        quick.remember(
            self.invocation(),
            quick.Answer(
                record=self.record,
                record_sha256=quick.file_sha256(self.record),
                config=quick.config_files([root / "pyproject.toml", root / "absent.toml"]),
                links=links,
                output=OUTPUT,
            ),
        )

    def invocation(self) -> quick.Invocation:
        return quick.Invocation(
            argv=self.argv, cwd=self.cwd, env=dict(self.env), mode=self.mode, day=self.day
        )

    def answer(self) -> quick.Output | None:
        return quick.lookup(self.invocation(), image_ids=lambda env: self.image_id)

    def image_id(self, ref: str, platform: str | None) -> str | None:
        return self.ids.get(ref)


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "handler.py").write_text("x = 1\n")
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "pyproject.toml").write_text("[tool.nativebuild]\n")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "function.zip").write_bytes(b"PK archive")
    (tmp_path / "target-a").mkdir()
    (tmp_path / "target-b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target-a")
    (tmp_path / "cache").mkdir()
    return World(tmp_path)


def test_the_same_invocation_with_nothing_changed_gets_the_kept_output(world: World) -> None:
    assert world.answer() == OUTPUT


def _retarget(w: World) -> None:
    (w.root / "link").unlink()
    (w.root / "link").symlink_to(w.root / "target-b")


def _edit(name: str, text: str) -> Callable[[World], None]:
    return lambda w: (w.root / name).write_text(text)


def _set(name: str, value: Any) -> Callable[[World], None]:
    return lambda w: setattr(w, name, value)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_set("argv", ("build", "--json")), "other arguments"),
        (_set("cwd", "/"), "another working directory"),
        (lambda w: w.env.update(TERM="dumb"), "any variable"),
        (_set("mode", ((True, (80, 24)), (True, (80, 24)), (True, (80, 24)))), "a terminal"),
        (_set("day", "2026-12-07"), "another day: deprecation notices move"),
        (_edit("pyproject.toml", "[tool.nativebuild]\njobs=2\n"), "config edited"),
        (lambda w: (w.root / "absent.toml").write_text(""), "a configuration file appeared"),
        (_retarget, "a path setting's link leads elsewhere"),
        (lambda w: (w.root / "app" / "handler.py").write_text("x = 22\n"), "source edited"),
        (lambda w: (w.root / "app" / "new.py").write_text(""), "a file added to a tree"),
        (lambda w: (w.root / "dist" / "function.zip").unlink(), "the output deleted"),
        (lambda w: w.ids.update({IMAGE: "sha256:" + "2" * 64}), "the image rebuilt"),
        (lambda w: w.env.update(PIP_INDEX_URL="https://j"), "pip's index changed"),
        (lambda w: w.record.write_text(w.record.read_text() + " "), "another record"),
        (lambda w: w.record.unlink(), "the record forgotten (a build started)"),
    ],
)
def test_any_change_sends_the_invocation_to_the_full_command_line(
    world: World, change: Callable[[World], None], why: str
) -> None:
    change(world)
    assert world.answer() is None, why


def test_what_a_shell_changes_on_its_own_is_not_a_change(world: World) -> None:
    world.env.update({"_": "/usr/bin/env", "OLDPWD": "/elsewhere"})
    assert world.answer() == OUTPUT


def test_a_malformed_or_foreign_entry_is_no_answer(world: World) -> None:
    path = world.invocation().index_path()
    assert path is not None
    entry = json.loads(Path(path).read_text())
    for broken in ("{not json", json.dumps({**entry, "format": 2}),
                   json.dumps({**entry, "output": [["stdin", "x"]]}),
                   json.dumps({**entry, "output": 3})):  # fmt: skip
        Path(path).write_text(broken)
        assert world.answer() is None, broken


def test_no_value_of_the_environment_is_kept(world: World) -> None:
    world.env["AWS_SECRET_ACCESS_KEY"] = "very-secret-value"  # noqa: S105
    quick.remember(world.invocation(), quick.Answer(
        record=world.record, record_sha256="x", config={}, links={}, output=[],
    ))  # fmt: skip
    path = world.invocation().index_path()
    assert path is not None
    assert "very-secret-value" not in Path(path).read_text()


def test_nothing_is_kept_where_no_cache_is(tmp_path: Path) -> None:
    invocation = quick.Invocation(
        argv=("build", "--cache-dir", str(tmp_path / "none")), cwd=str(tmp_path), env={}, mode=()
    )
    quick.remember(invocation, quick.Answer(
        record=tmp_path / "r.json", record_sha256="x", config={}, links={}, output=[],
    ))  # fmt: skip
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("argv", "env", "platform", "expected"),
    [
        (("build", "--cache-dir", "c"), {}, "linux", "/w/c"),
        (("build", "--cache-dir=/abs/c", "--json"), {}, "linux", "/abs/c"),
        (("build", "--cache-dir", "a", "--cache-dir", "b"), {}, "linux", "/w/b"),  # the last
        (("build", "--", "--cache-dir", "x"), {"NATIVEBUILD_CACHE_DIR": "/e"}, "linux", "/e"),
        (("build",), {"XDG_CACHE_HOME": "/x"}, "linux", "/x/nativebuild"),
        (
            ("build",),
            {"XDG_CACHE_HOME": " "},
            "linux",
            str(Path("~/.cache/nativebuild").expanduser()),
        ),
    ],
)
def test_the_entry_lives_in_the_cache_the_invocation_names(
    argv: tuple[str, ...], env: dict[str, str], platform: str, expected: str
) -> None:
    assert quick.cache_root(argv, env, "/w", platform) == expected
