from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import platformdirs
import pytest

from nativebuild.cache.keys import CACHE_LAYOUT_VERSION, build_key, file_identity
from nativebuild.cache.local import BuiltWheelEntry, LocalCache, default_cache_dir
from nativebuild.errors import CacheError
from tests.conftest import ROOT_IGNORES_MODES
from tests.fakes import RecordingReporter

FIELDS = {
    "name": "markupsafe",
    "version": "2.1.5",
    "sdist_sha256": "a" * 64,
    "runtime": "python3.12",
    "arch": "x86_64",
    "image": "public.ecr.aws/sam/build-python3.12@sha256:" + "b" * 64,
    "build_flags": "",
}
KEY = build_key(FIELDS)


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


@pytest.fixture
def cache(tmp_path: Path, reporter: RecordingReporter) -> LocalCache:
    cache = LocalCache(tmp_path / "cache", reporter=reporter)
    cache.ensure()
    return cache


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel(tmp_path: Path, data: bytes = b"wheel bytes") -> Path:
    return write(tmp_path / "src" / "markupsafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.whl", data)


# ----- keys --------------------------------------------------------------------------------


def test_build_key_is_sha256_of_canonical_json_with_layout() -> None:
    canonical = f'{{"arch":"x86_64","layout":{CACHE_LAYOUT_VERSION},"name":"x"}}'
    assert build_key({"name": "x", "arch": "x86_64"}) == sha(canonical.encode())


def test_build_key_ignores_field_order() -> None:
    assert build_key(dict(reversed(list(FIELDS.items())))) == KEY


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_build_key_changes_with_every_field(field: str) -> None:
    changed = {**FIELDS, field: FIELDS[field] + "x"}
    dropped = {k: v for k, v in FIELDS.items() if k != field}
    assert len({KEY, build_key(changed), build_key(dropped)}) == 3


def test_build_key_refuses_a_layout_field() -> None:
    with pytest.raises(CacheError) as caught:
        build_key({"layout": "2"})
    assert str(caught.value) == (
        "Cache key fields must not contain 'layout': the cache adds it itself."
    )


def test_file_identity_is_the_path_size_and_modification_time(tmp_path: Path) -> None:
    path = tmp_path / "handler.py"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
    assert file_identity(path) == f"{path}|5|1700000000123456789"
    path.write_bytes(b"123456")  # edited: another identity
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
    assert file_identity(path) == f"{path}|6|1700000000123456789"


# ----- location and setup ------------------------------------------------------------------


def test_default_cache_dir_env_override_expands_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_cache_dir({"NATIVEBUILD_CACHE_DIR": "~/c"}) == Path("/home/someone/c")


@pytest.mark.parametrize("env", [{}, {"NATIVEBUILD_CACHE_DIR": ""}])
def test_default_cache_dir_falls_back_to_platform_dir(env: dict[str, str]) -> None:
    expected = platformdirs.user_cache_path("nativebuild", appauthor=False)
    assert default_cache_dir(env) == expected


def test_ensure_creates_layout_and_cachedir_tag(cache: LocalCache) -> None:
    tag = (cache.root / "CACHEDIR.TAG").read_text()
    assert tag.splitlines()[0] == "Signature: 8a477f597d28d172789f06886806bc55"
    for sub in ("v1/files", "v1/built", "v1/json", "tmp", "locks"):
        assert (cache.root / sub).is_dir()


def test_ensure_under_a_regular_file_raises_cache_error(tmp_path: Path) -> None:
    write(tmp_path / "file", b"")
    with pytest.raises(CacheError, match="file/cache") as info:
        LocalCache(tmp_path / "file" / "cache").ensure()
    assert "--cache-dir" in str(info.value.hint)
    assert "NATIVEBUILD_CACHE_DIR" in str(info.value.hint)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason=ROOT_IGNORES_MODES)
def test_ensure_in_read_only_dir_raises_cache_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(CacheError, match="ro"):
        LocalCache(tmp_path / "ro" / "cache").ensure()


def test_ensure_removes_only_old_temp_leftovers(cache: LocalCache) -> None:
    old_dir = write(cache.root / "tmp" / "built-old" / "x.whl", b"x").parent
    old_file = write(cache.root / "tmp" / "file-old.part", b"x")
    fresh = write(cache.root / "tmp" / "built-fresh" / "x.whl", b"x").parent
    two_hours_ago = time.time() - 7200
    for path in (old_dir, old_file):
        os.utime(path, (two_hours_ago, two_hours_ago))
    cache.ensure()
    assert not old_dir.exists()
    assert not old_file.exists()
    assert fresh.exists()


def test_ensure_keeps_an_old_scratch_dir_still_in_use(cache: LocalCache) -> None:
    with cache.scratch_dir() as scratch:
        write(scratch / "out.whl", b"x")
        os.utime(scratch, (time.time() - 7200, time.time() - 7200))
        LocalCache(cache.root).ensure()
        assert (scratch / "out.whl").exists()
    scratch.mkdir()  # now abandoned (its owner is gone) and old
    os.utime(scratch, (time.time() - 7200, time.time() - 7200))
    LocalCache(cache.root).ensure()
    assert not scratch.exists()


def test_scratch_dir_is_under_tmp_and_removed_even_on_error(cache: LocalCache) -> None:
    seen: list[Path] = []

    def use_scratch() -> None:
        with cache.scratch_dir() as scratch:
            seen.append(scratch)
            write(scratch / "a" / "b", b"x")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        use_scratch()
    assert seen[0].parent == cache.root / "tmp"
    assert not seen[0].exists()


# ----- files from an index -----------------------------------------------------------------


def test_put_file_then_get_file(cache: LocalCache, tmp_path: Path) -> None:
    data = b"sdist bytes"
    source = write(tmp_path / "pkg-1.0.tar.gz", data)
    stored = cache.put_file(source, sha256=sha(data), filename="pkg-1.0.tar.gz")
    expected_path = cache.root / "v1/files" / sha(data)[:2] / sha(data) / "pkg-1.0.tar.gz"
    assert stored.path == expected_path
    assert stored.path.read_bytes() == data
    assert source.exists()
    assert cache.get_file(sha(data), "pkg-1.0.tar.gz") == stored
    assert stored.size == len(data)
    assert list((cache.root / "tmp").iterdir()) == []


def test_get_file_missing_is_none_without_warning(
    cache: LocalCache, reporter: RecordingReporter
) -> None:
    assert cache.get_file("c" * 64, "x.whl") is None
    assert reporter.warnings == []


def test_put_file_with_wrong_sha_is_refused_and_stores_nothing(
    cache: LocalCache, tmp_path: Path
) -> None:
    source = write(tmp_path / "x.whl", b"actual")
    with pytest.raises(CacheError) as info:
        cache.put_file(source, sha256="d" * 64, filename="x.whl", move=True)
    assert "d" * 64 in str(info.value)
    assert sha(b"actual") in str(info.value)
    assert source.read_bytes() == b"actual"
    assert cache.get_file("d" * 64, "x.whl") is None
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_file_move_consumes_the_source(cache: LocalCache, tmp_path: Path) -> None:
    source = write(tmp_path / "x.whl", b"moved")
    stored = cache.put_file(source, sha256=sha(b"moved"), filename="x.whl", move=True)
    assert not source.exists()
    assert stored.path.read_bytes() == b"moved"


def test_corrupted_file_is_evicted_and_warned_once(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path
) -> None:
    stored = cache.put_file(
        write(tmp_path / "x.whl", b"good"), sha256=sha(b"good"), filename="x.whl"
    )
    stored.path.write_bytes(b"bad!")
    assert cache.get_file(sha(b"good"), "x.whl") is None
    assert cache.get_file(sha(b"good"), "x.whl") is None
    assert len(reporter.warnings) == 1
    assert str(stored.path) in reporter.warnings[0]
    assert "downloaded again" in reporter.warnings[0]
    assert not stored.path.exists()


# ----- built wheels ------------------------------------------------------------------------


def test_put_built_then_get_built(cache: LocalCache, tmp_path: Path) -> None:
    source = wheel(tmp_path, b"built")
    entry = cache.put_built(KEY, source, {"name": "markupsafe", "fields": FIELDS})
    entry_dir = cache.root / "v1/built" / KEY[:2] / KEY
    assert entry.wheel.path == entry_dir / source.name
    assert entry.wheel.path.read_bytes() == b"built"
    assert (entry.wheel.sha256, entry.wheel.size) == (sha(b"built"), 5)
    assert entry.manifest["name"] == "markupsafe"
    assert entry.manifest["fields"] == FIELDS
    assert entry.manifest["wheel_filename"] == source.name
    assert entry.manifest["wheel_sha256"] == sha(b"built")
    assert entry.manifest["wheel_size"] == 5
    assert entry.manifest["created"].endswith("+00:00")
    on_disk = (entry_dir / "manifest.json").read_text()
    assert on_disk == json.dumps(entry.manifest, sort_keys=True, indent=1) + "\n"
    assert cache.get_built(KEY) == entry
    assert source.exists()
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_built_move_consumes_the_wheel(cache: LocalCache, tmp_path: Path) -> None:
    with cache.scratch_dir() as scratch:
        built = write(scratch / "pkg-1.0-py3-none-any.whl", b"from scratch")
        entry = cache.put_built(KEY, built, {}, move=True)
        assert not built.exists()
    assert entry.wheel.path.read_bytes() == b"from scratch"


def test_put_built_is_write_once(cache: LocalCache, tmp_path: Path) -> None:
    first = cache.put_built(KEY, wheel(tmp_path, b"first"), {"n": 1})
    second = cache.put_built(KEY, wheel(tmp_path, b"second"), {"n": 2})
    assert second == first
    assert second.manifest["n"] == 1
    assert first.wheel.path.read_bytes() == b"first"
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_built_inside_the_lock_does_not_deadlock(cache: LocalCache, tmp_path: Path) -> None:
    results: list[BuiltWheelEntry | None] = []

    def build() -> None:
        with cache.lock(KEY):
            assert cache.get_built(KEY) is None
            results.append(cache.put_built(KEY, wheel(tmp_path), {}))

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert results == [cache.get_built(KEY)]


def test_get_built_missing_is_none_without_warning(
    cache: LocalCache, reporter: RecordingReporter
) -> None:
    assert cache.get_built(KEY) is None
    assert reporter.warnings == []


@pytest.mark.parametrize("damage", [b"XXXX", b"wheel bytez", b""])
def test_corrupted_wheel_is_evicted_and_warned_exactly_once(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path, damage: bytes
) -> None:
    entry = cache.put_built(KEY, wheel(tmp_path), {})
    entry.wheel.path.write_bytes(damage)
    assert cache.get_built(KEY) is None
    assert cache.get_built(KEY) is None
    assert len(reporter.warnings) == 1
    assert KEY in reporter.warnings[0]
    assert "rebuilt" in reporter.warnings[0]
    assert not entry.wheel.path.parent.exists()
    rebuilt = cache.put_built(KEY, wheel(tmp_path), {})
    assert cache.get_built(KEY) == rebuilt


@pytest.mark.parametrize(
    "manifest",
    [
        b"{not json",
        b"[1, 2]",
        b'{"wheel_filename": "x.whl"}',
        b'{"wheel_filename": "../../x.whl", "wheel_sha256": "", "wheel_size": 0}',
        None,
    ],
    ids=["garbled", "not-object", "incomplete", "escaping-name", "missing"],
)
def test_bad_manifest_is_evicted_and_warned_once(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path, manifest: bytes | None
) -> None:
    entry = cache.put_built(KEY, wheel(tmp_path), {})
    manifest_path = entry.wheel.path.parent / "manifest.json"
    if manifest is None:
        manifest_path.unlink()
    else:
        manifest_path.write_bytes(manifest)
    assert cache.get_built(KEY) is None
    assert cache.get_built(KEY) is None
    assert len(reporter.warnings) == 1
    assert KEY in reporter.warnings[0]
    assert not entry.wheel.path.parent.exists()


def test_put_built_refuses_a_non_wheel(cache: LocalCache, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"\.whl"):
        cache.put_built(KEY, write(tmp_path / "pkg.tar.gz", b"x"), {})


# ----- JSON documents ----------------------------------------------------------------------


def test_put_json_then_get_json(cache: LocalCache) -> None:
    document = {"b": [1, 2], "a": {"z": None}}
    cache.put_json("resolution", KEY, document)
    path = cache.root / "v1/json/resolution" / KEY[:2] / f"{KEY}.json"
    assert path.read_text() == '{\n "a": {\n  "z": null\n },\n "b": [\n  1,\n  2\n ]\n}\n'
    assert cache.get_json("resolution", KEY) == document
    assert cache.get_json("other-kind", KEY) is None


def test_put_json_is_write_once(cache: LocalCache) -> None:
    cache.put_json("resolution", KEY, {"v": 1})
    cache.put_json("resolution", KEY, {"v": 2})
    assert cache.get_json("resolution", KEY) == {"v": 1}


@pytest.mark.parametrize("content", [b'{"v": ', b"[]", b"\xff\xfe"])
def test_garbled_json_is_evicted_and_warned_once(
    cache: LocalCache, reporter: RecordingReporter, content: bytes
) -> None:
    cache.put_json("resolution", KEY, {"v": 1})
    path = cache.root / "v1/json/resolution" / KEY[:2] / f"{KEY}.json"
    path.write_bytes(content)
    assert cache.get_json("resolution", KEY) is None
    assert cache.get_json("resolution", KEY) is None
    assert len(reporter.warnings) == 1
    assert str(path) in reporter.warnings[0]
    assert not path.exists()
    cache.put_json("resolution", KEY, {"v": 2})
    assert cache.get_json("resolution", KEY) == {"v": 2}


# ----- validation --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["", "../x", "a/b", "Resolution", "a.b", "x" * 65])
def test_bad_kind_is_refused(cache: LocalCache, kind: str) -> None:
    with pytest.raises(CacheError, match="kind"):
        cache.put_json(kind, KEY, {})
    with pytest.raises(CacheError, match="kind"):
        cache.get_json(kind, KEY)


@pytest.mark.parametrize("key", ["", "../" + KEY, KEY.upper(), "g" * 64, "ab", KEY + "/x"])
def test_bad_key_is_refused(cache: LocalCache, tmp_path: Path, key: str) -> None:
    with pytest.raises(CacheError, match="key"):
        cache.get_built(key)
    with pytest.raises(CacheError, match="key"):
        cache.put_built(key, wheel(tmp_path), {})
    with pytest.raises(CacheError, match="key"):
        cache.get_json("resolution", key)
    with pytest.raises(CacheError, match="key"):
        cache.lock(key)


@pytest.mark.parametrize("digest", ["", "a" * 63, "A" * 64, "../" + "a" * 61])
def test_bad_sha256_is_refused(cache: LocalCache, tmp_path: Path, digest: str) -> None:
    with pytest.raises(CacheError, match="sha256"):
        cache.get_file(digest, "x.whl")
    with pytest.raises(CacheError, match="sha256"):
        cache.put_file(write(tmp_path / "x.whl", b"x"), sha256=digest, filename="x.whl")


@pytest.mark.parametrize("filename", ["", ".", "..", "../x.whl", "a/x.whl", "a\\x.whl"])
def test_bad_filename_is_refused(cache: LocalCache, tmp_path: Path, filename: str) -> None:
    with pytest.raises(CacheError, match="file name"):
        cache.get_file("a" * 64, filename)
    with pytest.raises(CacheError, match="file name"):
        cache.put_file(write(tmp_path / "x.whl", b"x"), sha256=sha(b"x"), filename=filename)


# ----- edges found by the mutation run (tests/mutation/run cache.local) ----------------------


def test_replace_json_overwrites_a_document_in_a_fresh_cache(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")  # not ensured: replace_json prepares it
    cache.replace_json("image-digest", "ab" * 8, {"digest": "one"})
    cache.replace_json("image-digest", "ab" * 8, {"digest": "two"})
    assert cache.get_json("image-digest", "ab" * 8) == {"digest": "two"}
    assert LocalCache(tmp_path / "cache").get_json("image-digest", "ab" * 8) == {"digest": "two"}


def test_the_same_file_under_two_names_is_stored_twice(cache: LocalCache, tmp_path: Path) -> None:
    data = b"same bytes"
    for name in ("a-1.0.tar.gz", "a-1.0.zip"):
        stored = cache.put_file(write(tmp_path / name, data), sha256=sha(data), filename=name)
        assert stored.path.name == name
    assert cache.get_file(sha(data), "a-1.0.tar.gz") is not None
    assert cache.get_file(sha(data), "a-1.0.zip") is not None


def test_the_cache_writes_nothing_outside_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Temp files are made in <root>/tmp, on the cache's filesystem, so renames stay atomic.
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "no-such-dir"))
    cache = LocalCache(tmp_path / "cache")
    cache.put_json("kind", "ab" * 8, {"x": 1})
    cache.replace_json("kind", "cd" * 8, {"x": 2})
    entry = cache.put_built(KEY, wheel(tmp_path), {"fields": FIELDS})
    assert cache.get_built(KEY) == entry
    assert not (tmp_path / "no-such-dir").exists()


def test_entries_are_readable_by_everyone_and_writable_by_the_owner_only(
    cache: LocalCache, tmp_path: Path
) -> None:
    data = b"shared"
    source = write(tmp_path / "f.tar.gz", data)
    source.chmod(0o600)
    stored = cache.put_file(source, sha256=sha(data), filename="f.tar.gz")
    assert stored.path.stat().st_mode & 0o777 == 0o644
    entry = cache.put_built(KEY, wheel(tmp_path), {"fields": FIELDS})
    assert entry.wheel.path.stat().st_mode & 0o777 == 0o644
    assert entry.wheel.path.parent.stat().st_mode & 0o777 == 0o755


def test_a_sha256_mismatch_says_to_download_again(cache: LocalCache, tmp_path: Path) -> None:
    source = write(tmp_path / "f.tar.gz", b"tampered")
    with pytest.raises(CacheError, match="does not match its expected sha256") as caught:
        cache.put_file(source, sha256=sha(b"genuine"), filename="f.tar.gz")
    assert "download the file again" in str(caught.value.hint).lower()


def test_an_unserialisable_manifest_is_refused_before_the_wheel_is_moved(
    cache: LocalCache, tmp_path: Path
) -> None:
    source = wheel(tmp_path)
    with pytest.raises(TypeError):
        cache.put_built(KEY, source, {"fields": FIELDS, "odd": {1, 2}}, move=True)
    assert source.read_bytes() == b"wheel bytes"
    assert cache.get_built(KEY) is None


def test_a_failed_write_names_the_entry(cache: LocalCache, tmp_path: Path) -> None:
    missing = tmp_path / "gone-1.0-py3-none-any.whl"
    with pytest.raises(CacheError, match=f"Cannot write the cache entry .*{KEY}"):
        cache.put_built(KEY, missing, {"fields": FIELDS})
    digest = sha(b"x")
    with pytest.raises(CacheError, match=f"Cannot write the cache entry .*{digest}/f.tar.gz"):
        cache.put_file(tmp_path / "gone.tar.gz", sha256=digest, filename="f.tar.gz")


def test_stored_file_is_where_a_present_file_is(cache: LocalCache, tmp_path: Path) -> None:
    data = b"a large blob"
    assert cache.stored_file(sha(data), "blob.tar") is None
    stored = cache.put_file(
        write(tmp_path / "blob.tar", data), sha256=sha(data), filename="blob.tar"
    )
    assert cache.stored_file(sha(data), "blob.tar") == stored.path
    assert cache.stored_file(sha(data), "other.tar") is None
    with pytest.raises(CacheError):
        cache.stored_file("not-a-sha", "blob.tar")


def test_a_local_cache_keeps_machine_local_documents_itself(cache: LocalCache) -> None:
    cache.machine_local.put_json("kind", "ab" * 8, {"here": True})
    assert cache.get_json("kind", "ab" * 8) == {"here": True}


def test_a_move_across_filesystems_copies_then_removes_the_source(
    cache: LocalCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "elsewhere" / "f.tar.gz", b"far away")
    rename = Path.replace

    def cross_device(self: Path, target: Path) -> Path:
        if self == source:  # as rename(2) answers for another filesystem
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", cross_device)
    stored = cache.put_file(source, sha256=sha(b"far away"), filename="f.tar.gz", move=True)
    assert stored.path.read_bytes() == b"far away"
    assert not source.exists()


def test_ensure_removes_every_old_leftover_among_fresh_ones(cache: LocalCache) -> None:
    two_hours_ago = time.time() - 7200
    old = [write(cache.root / "tmp" / f"file-old{i}.part", b"x") for i in range(8)]
    fresh = [write(cache.root / "tmp" / f"file-new{i}.part", b"x") for i in range(8)]
    for path in old:
        os.utime(path, (two_hours_ago, two_hours_ago))
    cache.ensure()
    assert sorted(p.name for p in (cache.root / "tmp").iterdir()) == sorted(p.name for p in fresh)


def test_writes_name_the_entry_when_the_temp_folder_is_broken(
    cache: LocalCache, tmp_path: Path
) -> None:
    (cache.root / "tmp").rmdir()
    write(cache.root / "tmp", b"a file where the temp folder belongs")
    with pytest.raises(CacheError, match=f"Cannot write the cache entry .*{KEY}: Not a directory"):
        cache.put_built(KEY, wheel(tmp_path), {"fields": FIELDS})
    with pytest.raises(CacheError, match=r"Cannot write the cache entry .*kind/ab/abab"):
        cache.put_json("kind", "ab" * 8, {"x": 1})
    with pytest.raises(CacheError, match=r"Cannot write the cache entry .*kind/cd/cdcd"):
        cache.replace_json("kind", "cd" * 8, {"x": 1})
    with pytest.raises(CacheError) as caught:
        LocalCache(cache.root).ensure()
    assert str(caught.value).endswith(": File exists.")  # strerror, not the whole OSError


def test_json_documents_are_readable_by_everyone_and_a_garbled_one_is_recomputed(
    cache: LocalCache, reporter: RecordingReporter
) -> None:
    cache.put_json("kind", "ab" * 8, {"x": 1})
    (path,) = (cache.root / "v1/json/kind").rglob("*.json")
    assert path.stat().st_mode & 0o777 == 0o644
    path.write_text("[1, 2]")
    assert cache.get_json("kind", "ab" * 8) is None
    (warning,) = reporter.warnings
    assert warning.endswith("(not a JSON object); it will be recomputed.")


# ----- failure paths: an entry that cannot be moved, a rename that loses a race -------------


def test_a_plain_file_name_may_hold_any_letter(cache: LocalCache, tmp_path: Path) -> None:
    data = b"an sdist with capitals"
    name = "PyXML-0.8.4.tar.gz"  # only '/', '\\' and NUL are refused
    stored = cache.put_file(write(tmp_path / name, data), sha256=sha(data), filename=name)
    assert stored.path.name == name
    assert cache.get_file(sha(data), name) == stored


def test_a_cache_without_a_reporter_logs_an_eviction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LocalCache(tmp_path / "cache")
    stored = cache.put_file(
        write(tmp_path / "x.whl", b"good"), sha256=sha(b"good"), filename="x.whl"
    )
    stored.path.write_bytes(b"bad!")
    with caplog.at_level("WARNING", logger="nativebuild"):
        assert cache.get_file(sha(b"good"), "x.whl") is None
    assert [r.getMessage() for r in caplog.records if str(stored.path) in r.getMessage()]


def test_a_temp_entry_exactly_at_the_age_limit_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_800_000_000  # whole seconds: the file times and the cut-off compare exactly
    cache = LocalCache(tmp_path / "cache")
    at_limit = write(cache.root / "tmp" / "file-at-limit.part", b"x")
    older = write(cache.root / "tmp" / "file-older.part", b"x")
    os.utime(at_limit, ns=(0, (now - 3600) * 10**9))
    os.utime(older, ns=(0, (now - 3601) * 10**9))
    monkeypatch.setattr(time, "time", lambda: float(now))
    cache.ensure()
    assert [p.name for p in (cache.root / "tmp").iterdir()] == ["file-at-limit.part"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"wheel_filename": 5}, "lacks wheel_filename"),  # a number, not a name
        ({"wheel_size": 11.0}, "lacks wheel_filename"),  # the right size, as a float
        ({"wheel_sha256": None}, "lacks wheel_filename"),
    ],
    ids=["number-name", "float-size", "null-sha256"],
)
def test_a_manifest_field_of_the_wrong_type_evicts_the_entry(
    cache: LocalCache,
    reporter: RecordingReporter,
    tmp_path: Path,
    fields: dict[str, object],
    problem: str,
) -> None:
    entry = cache.put_built(KEY, wheel(tmp_path), {})
    manifest_path = entry.wheel.path.parent / "manifest.json"
    manifest_path.write_text(json.dumps({**entry.manifest, **fields}))
    assert cache.get_built(KEY) is None
    (warning,) = reporter.warnings
    assert problem in warning
    assert not entry.wheel.path.parent.exists()


def test_a_corrupt_entry_that_cannot_be_moved_aside_is_an_error(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path
) -> None:
    stored = cache.put_file(
        write(tmp_path / "x.whl", b"good"), sha256=sha(b"good"), filename="x.whl"
    )
    stored.path.write_bytes(b"bad!")
    (cache.root / "tmp").rmdir()
    write(cache.root / "tmp", b"a file where the temp folder belongs")
    with pytest.raises(CacheError) as caught:
        cache.get_file(sha(b"good"), "x.whl")
    message = str(caught.value)
    assert message.startswith(f"Cannot remove the corrupt cache entry {stored.path}: ")
    assert message.endswith(": Not a directory.")  # strerror, not the whole OSError
    assert "--cache-dir" in str(caught.value.hint)
    assert stored.path.read_bytes() == b"bad!"  # still there, and no warning said otherwise
    assert reporter.warnings == []


def test_an_unreadable_entry_is_evicted_with_its_cause(
    cache: LocalCache, reporter: RecordingReporter
) -> None:
    digest = sha(b"data")
    path = cache.root / "v1/files" / digest[:2] / digest / "f.tar.gz"
    write(path / "inside", b"a directory where the file belongs")
    assert cache.get_file(digest, "f.tar.gz") is None
    (warning,) = reporter.warnings
    assert f"{path} (unreadable: Is a directory)" in warning
    assert not path.exists()
    assert list((cache.root / "tmp").iterdir()) == []  # the evicted directory removed


def test_an_evicted_entry_that_cannot_be_deleted_is_left_to_the_temp_clean_up(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = cache.put_built(KEY, wheel(tmp_path), {})
    entry.wheel.path.write_bytes(b"damaged")

    def busy(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)  # e.g. a mount point

    monkeypatch.setattr(os, "rmdir", busy)
    assert cache.get_built(KEY) is None
    monkeypatch.undo()
    (warning,) = reporter.warnings
    assert KEY in warning
    (left,) = (cache.root / "tmp").iterdir()
    assert left.name.startswith("evicted-")
    assert not entry.wheel.path.parent.exists()


def test_an_entry_removed_by_another_clean_up_after_eviction_is_no_error(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = cache.put_file(
        write(tmp_path / "x.whl", b"good"), sha256=sha(b"good"), filename="x.whl"
    )
    stored.path.write_bytes(b"bad!")
    rename = Path.rename

    def rename_then_cleaned(self: Path, target: Path) -> Path:
        moved = rename(self, target)
        if self == stored.path:  # an old entry keeps its time: another ensure() removes it
            Path(target).unlink()
        return moved

    monkeypatch.setattr(Path, "rename", rename_then_cleaned)
    assert cache.get_file(sha(b"good"), "x.whl") is None
    assert len(reporter.warnings) == 1


def test_put_built_replaces_a_corrupt_entry(
    cache: LocalCache, reporter: RecordingReporter, tmp_path: Path
) -> None:
    old = cache.put_built(KEY, wheel(tmp_path, b"first"), {"n": 1})
    old.wheel.path.write_bytes(b"damaged")
    new = cache.put_built(KEY, wheel(tmp_path, b"second"), {"n": 2})
    assert new.manifest["n"] == 2
    assert cache.get_built(KEY) == new
    assert new.wheel.path.read_bytes() == b"second"
    assert len(reporter.warnings) == 1


def test_put_built_names_the_entry_when_its_folder_cannot_be_made(
    cache: LocalCache, tmp_path: Path
) -> None:
    write(cache.root / "v1/built" / KEY[:2], b"a file where a folder belongs")
    with pytest.raises(CacheError) as caught:
        cache.put_built(KEY, wheel(tmp_path), {})
    assert str(caught.value).startswith(f"Cannot write the cache entry {cache.root}/v1/built/")
    assert f"/{KEY}: " in str(caught.value)
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_built_onto_a_file_in_the_entrys_place_is_an_error(
    cache: LocalCache, tmp_path: Path
) -> None:
    target = write(cache.root / "v1/built" / KEY[:2] / KEY, b"not an entry")
    source = wheel(tmp_path)
    with pytest.raises(CacheError) as caught:
        cache.put_built(KEY, source, {})
    assert str(caught.value).startswith(f"Cannot store the built wheel {source.name} in {target}")
    assert "--cache-dir" in str(caught.value.hint)
    assert target.read_bytes() == b"not an entry"
    assert list((cache.root / "tmp").iterdir()) == []


def test_put_built_returns_the_entry_of_a_writer_that_won_the_rename(
    cache: LocalCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer outside this cache's locks (another machine on a shared folder) gets there first.
    other = LocalCache(tmp_path / "other").put_built(KEY, wheel(tmp_path, b"theirs"), {"n": 1})
    target = cache.root / "v1/built" / KEY[:2] / KEY
    rename = Path.rename

    def lose_the_race(self: Path, destination: Path) -> Path:
        if Path(destination) == target:
            shutil.copytree(other.wheel.path.parent, target)
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", lose_the_race)
    got = cache.put_built(KEY, wheel(tmp_path, b"ours"), {"n": 2})
    assert got.manifest == other.manifest
    assert got.wheel.path == target / other.wheel.path.name
    assert got.wheel.path.read_bytes() == b"theirs"
