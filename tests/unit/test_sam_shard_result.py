"""What ``sam build --shard K/N --json`` says: ``build --shard``'s fields, in ``sam build``'s
shape (``resources``, empty, where ``build`` has ``archives``), so a CI step reads either."""

from __future__ import annotations

from pathlib import Path

import pytest

from nativebuild.config.settings import Settings
from nativebuild.errors import ConfigError
from nativebuild.pipeline.compiling import BuilderRecord
from nativebuild.pipeline.run import BuildResult
from nativebuild.pipeline.sam import SamRequest, build_template
from nativebuild.pipeline.sam_shard import SamShardResult, check_shard_settings
from nativebuild.pipeline.stage import WheelRecord
from nativebuild.plan.shards import Shard, ShardJob
from nativebuild.reporting import NullReporter
from nativebuild.targets import deprecation_notices
from tests.fakes import FakeIndex, FakeRunner

SHARD = Shard(index=2, count=3)
WHEEL = WheelRecord(
    name="markupsafe", version="2.1.5", arch="arm64", source="compiled",
    filename="MarkupSafe-2.1.5-cp39-cp39-linux_aarch64.whl", sha256="ab" * 32,
)  # fmt: skip
LEFT = ShardJob(name="wrapt", version="1.12.1", arch="arm64", key="cd" * 32, shard="1/3")
BUILDER = BuilderRecord(arch="arm64", engine="default", jobs=("markupsafe",), failed=False)


def test_a_template_shard_says_what_a_build_shard_says() -> None:
    notices = deprecation_notices(["python3.9"])
    fields = {
        "wheels": (WHEEL,), "left_to_other_shards": (LEFT,), "containers_started": 1,
        "builders": (BUILDER,), "deprecations": notices,
    }  # fmt: skip
    sam = SamShardResult(shard=SHARD, **fields).to_json()  # type: ignore[arg-type]
    build = BuildResult(archives=(), shard=SHARD, **fields).to_json()  # type: ignore[arg-type]
    assert sam.pop("resources") == []
    assert (build.pop("archives"), build.pop("manifest")) == ([], None)
    assert sam == build
    assert sam["shard"] == "2/3"
    assert sam["left_to_other_shards"] == [
        {"name": "wrapt", "version": "1.12.1", "arch": "arm64", "key": "cd" * 32, "shard": "1/3"}
    ]


def test_a_template_shard_needs_a_shard_and_compiles() -> None:
    assert check_shard_settings(Settings(shard=SHARD)) == SHARD
    with pytest.raises(ConfigError, match="needs --shard K/N") as missing:
        check_shard_settings(Settings())
    with pytest.raises(ConfigError, match="--cache-only forbids that") as cache_only:
        check_shard_settings(Settings(shard=SHARD, cache_only=True))
    assert missing.value.exit_code == cache_only.value.exit_code == 2


def test_the_whole_template_build_leaves_a_shard_to_its_own_run(tmp_path: Path) -> None:
    """A library caller with a shard in its settings gets an error, not a build directory."""
    request = SamRequest(template=tmp_path / "template.yaml", build_dir=tmp_path / "build")
    with pytest.raises(ConfigError, match="writes no build directory: run build_template_shard"):
        build_template(
            request, Settings(shard=SHARD), runner=FakeRunner(FakeIndex(tmp_path / "index")),
            env={}, reporter=NullReporter(),
        )  # fmt: skip
    assert not (tmp_path / "build").exists()
