"""Build image naming, planning, contexts and digest pins, with a fake engine at the seam."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from nativebuild.config.settings import Settings
from nativebuild.engine import build_images as images
from nativebuild.engine.runner import ImageInfo
from nativebuild.errors import ConfigError, ImageNotFoundError
from nativebuild.index.pip_config import IndexSettings
from nativebuild.reporting import NullReporter, Reporter
from nativebuild.targets import Architecture, get_runtime, runtimes

BASE_ID = "sha256:" + "b" * 64
PINNED = "sha256:" + "c" * 64
RECIPE_DIR = Path(__file__).resolve().parents[2] / "build-images"


def info(tag: str, labels: Mapping[str, str], image_id: str = "sha256:" + "d" * 64) -> ImageInfo:
    return ImageInfo(
        id=image_id,
        tags=(tag,),
        repo_digests=(),
        labels=dict(labels),
        architecture="amd64",
        created="2024-01-01T00:00:00Z",
        size=1,
    )


class FakeImageRunner:
    """Records what would reach the engine; a build reads its context like the engine does."""

    def __init__(self, *, local: Iterable[str] = (), registry: Mapping[str, str] | None = None):
        self.local = set(local)
        self.registry = dict(registry or {})
        self.image_id_calls: list[tuple[str, str | None]] = []
        self.builds: list[dict[str, object]] = []

    def image_id(self, image: str, *, platform: str | None) -> str:
        self.image_id_calls.append((image, platform))
        return BASE_ID

    def local_image(self, image: str) -> ImageInfo | None:
        return info(image, {}) if image in self.local else None

    def list_images(self, prefix: str) -> list[ImageInfo]:
        return [info(tag, {}) for tag in self.local if tag.startswith(prefix)]

    def registry_digest(self, image: str) -> str:
        if image not in self.registry:
            msg = f"registry does not answer for {image}"
            raise ImageNotFoundError(msg)
        return self.registry[image]

    def build_image(
        self,
        *,
        context_dir: Path,
        tag: str,
        buildargs: Mapping[str, str],
        platform: str | None,
        reporter: Reporter,
        secrets: Iterable[str] = (),
    ) -> str:
        files = {p.name: p.read_bytes() for p in context_dir.iterdir()}
        executable = bool((context_dir / "install-toolchain.sh").stat().st_mode & 0o100)
        self.builds.append(
            {"tag": tag, "buildargs": dict(buildargs), "platform": platform, "files": files,
             "secrets": tuple(secrets), "executable": executable}
        )  # fmt: skip
        self.local.add(tag)
        return "sha256:" + "e" * 64


def make_recipe(directory: Path, **overrides: str) -> images.Recipe:
    """A recipe whose files hold their own names, or ``overrides`` (install_toolchain_sh=...)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in images.RECIPE_FILES:
        content = overrides.get(name.replace("-", "_").replace(".", "_"), name)
        (directory / name).write_text(content)
    return images.Recipe.load(directory)


def target(arch: Architecture = Architecture.X86_64, runtime_image: str | None = None):
    settings = Settings(runtime="python3.12", archs=(arch,), runtime_image=runtime_image)
    return settings.targets()[0]


# --- recipe and tags ------------------------------------------------------------------------


def test_the_shipped_recipe_is_found_and_complete() -> None:
    assert images.recipe_dir() == RECIPE_DIR
    recipe = images.Recipe.load()
    assert [name for name, _ in recipe.files] == list(images.RECIPE_FILES)
    assert all(content for _, content in recipe.files)


def test_every_build_argument_is_declared_in_the_dockerfile() -> None:
    """An argument the Dockerfile does not declare is silently dropped by the builder."""
    declared = set(re.findall(r"^ARG (\w+)", (RECIPE_DIR / "Dockerfile").read_text(), re.MULTILINE))
    plan = images.plan_build(
        images.Recipe.load(), runtime=get_runtime("python3.12"), arch=Architecture.ARM64,
        base="base:1", base_digest=BASE_ID,
    )  # fmt: skip
    assert set(plan.buildargs()) <= declared
    assert {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"} <= declared


def test_the_dockerfile_copies_every_context_file() -> None:
    dockerfile = (RECIPE_DIR / "Dockerfile").read_text()
    for name in (*images.RECIPE_FILES[1:], images.CA_BUNDLE_NAME):
        assert name in dockerfile


def test_missing_recipe_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x")
    with pytest.raises(ConfigError, match=r"install-toolchain\.sh"):
        images.Recipe.load(tmp_path)


@pytest.mark.parametrize("changed", list(images.RECIPE_FILES))
def test_recipe_digest_follows_every_file(tmp_path: Path, changed: str) -> None:
    first = make_recipe(tmp_path)
    (tmp_path / changed).write_text("something else")
    second = images.Recipe.load(tmp_path)
    assert first.digest() != second.digest()


def test_recipe_hash_depends_on_base_runtime_and_arch(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path)
    arm = Architecture.ARM64

    def key(**kw: object) -> str:
        fields: dict[str, object] = {"base_digest": BASE_ID, "runtime": "python3.12", "arch": arm}
        fields.update(kw)
        return images.recipe_hash(recipe, **fields)  # type: ignore[arg-type]

    assert key() == key()
    assert len({key(), key(base_digest=PINNED), key(runtime="python3.13"),
                key(arch=Architecture.X86_64)}) == 4  # fmt: skip


def test_image_tag_names_python_version_hash_and_arch() -> None:
    tag = images.image_tag(get_runtime("python3.12"), Architecture.ARM64, "0123456789ab")
    assert tag == "nativebuild/build-python3.12:0123456789ab-arm64"


def test_plan_passes_the_runtime_interpreter_and_labels(tmp_path: Path) -> None:
    plan = images.plan_build(
        make_recipe(tmp_path), runtime=get_runtime("python3.11"), arch=Architecture.ARM64,
        base="public.ecr.aws/lambda/python:3.11-arm64", base_digest=BASE_ID,
    )  # fmt: skip
    assert plan.platform == "linux/arm64"
    assert re.fullmatch(r"nativebuild/build-python3\.11:[0-9a-f]{12}-arm64", plan.tag)
    assert plan.buildargs() == {
        "BASE": "public.ecr.aws/lambda/python:3.11-arm64",
        "BASE_DIGEST": BASE_ID,
        "PYTHON": "/var/lang/bin/python3.11",
        "RECIPE": plan.recipe,
        "RUNTIME": "python3.11",
        "ARCH": "arm64",
    }


# --- network and context --------------------------------------------------------------------


def test_network_buildargs_forward_index_and_proxies_but_no_file_paths(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("CA")
    index = IndexSettings(
        index_url="https://user:secret@mirror.example/simple",
        extra_index_urls=("https://extra.example/simple",),
        trusted_hosts=("mirror.example",),
        ca_bundle=bundle,
        netrc=bundle,
        proxies=(("HTTPS_PROXY", "http://proxy:3128"),),
    )
    assert images.network_buildargs(index) == {
        "PIP_INDEX_URL": "https://user:secret@mirror.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
        "PIP_TRUSTED_HOST": "mirror.example",
        "HTTPS_PROXY": "http://proxy:3128",
    }


def test_context_holds_the_recipe_and_the_ca_bundle(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "recipe")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----")
    with_ca, without = tmp_path / "with", tmp_path / "without"
    with_ca.mkdir()
    without.mkdir()
    images.write_context(recipe, with_ca, ca_bundle=bundle)
    images.write_context(recipe, without, ca_bundle=None)
    assert (with_ca / "ca-bundle.crt").read_text() == "-----BEGIN CERTIFICATE-----"
    assert (without / "ca-bundle.crt").read_bytes() == b""
    assert sorted(p.name for p in without.iterdir()) == sorted(
        [*images.RECIPE_FILES, "ca-bundle.crt"]
    )
    assert (without / "install-toolchain.sh").stat().st_mode & 0o111


def test_pinned_base_needs_no_engine() -> None:
    runner = FakeImageRunner()
    digest = images.base_digest(f"repo/img:1@{PINNED}", runner, platform="linux/amd64")
    assert digest == PINNED
    assert runner.image_id_calls == []


def test_unpinned_base_is_identified_by_the_engine() -> None:
    runner = FakeImageRunner()
    assert images.base_digest("repo/img:1", runner, platform="linux/arm64") == BASE_ID
    assert runner.image_id_calls == [("repo/img:1", "linux/arm64")]


# --- ensure_build_image ---------------------------------------------------------------------


def test_first_use_builds_from_the_runtime_image_then_reuses_it(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("CORPORATE CA")
    index = IndexSettings(index_url="https://u:pw@mirror.example/simple", ca_bundle=bundle)
    runner = FakeImageRunner()
    tgt = target(Architecture.ARM64, runtime_image="my/runtime:{arch}")

    tag = images.ensure_build_image(tgt, runner, NullReporter(), index=index, recipe=recipe)
    again = images.ensure_build_image(tgt, runner, NullReporter(), index=index, recipe=recipe)

    assert tag == again
    assert len(runner.builds) == 1, "the second call reuses the image"
    build = runner.builds[0]
    assert build["tag"] == tag
    assert build["platform"] == "linux/arm64"
    args = build["buildargs"]
    assert isinstance(args, dict)
    assert args["BASE"] == "my/runtime:arm64"
    assert args["BASE_DIGEST"] == BASE_ID
    assert args["PIP_INDEX_URL"] == "https://u:pw@mirror.example/simple"
    assert "https://u:pw@mirror.example/simple" in build["secrets"]  # type: ignore[operator]
    files = build["files"]
    assert isinstance(files, dict)
    assert files["ca-bundle.crt"] == b"CORPORATE CA"
    assert files["Dockerfile"] == b"Dockerfile"
    assert build["executable"]


def test_force_rebuilds_an_existing_image(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path)
    runner = FakeImageRunner()
    tgt = target()
    tag = images.ensure_build_image(tgt, runner, NullReporter(), recipe=recipe)
    images.ensure_build_image(tgt, runner, NullReporter(), recipe=recipe, force=True)
    assert [b["tag"] for b in runner.builds] == [tag, tag]


def test_a_new_recipe_or_base_means_a_new_tag(tmp_path: Path) -> None:
    runner = FakeImageRunner()
    old = images.ensure_build_image(
        target(), runner, NullReporter(), recipe=make_recipe(tmp_path / "a")
    )
    new_recipe = make_recipe(tmp_path / "b", install_toolchain_sh="changed")
    new = images.ensure_build_image(target(), runner, NullReporter(), recipe=new_recipe)
    rebased = images.ensure_build_image(
        target(runtime_image=f"my/runtime:1@{PINNED}"), runner, NullReporter(), recipe=new_recipe
    )
    assert len({old, new, rebased}) == 3
    assert len(runner.builds) == 3


# --- list -----------------------------------------------------------------------------------


def test_describe_images_marks_current_and_stale(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path)
    current = images.recipe_hash(recipe, base_digest=BASE_ID, runtime="python3.12",
                                  arch=Architecture.X86_64)  # fmt: skip

    def labels(recipe_hash: str) -> dict[str, str]:
        return {
            images.LABEL_RECIPE: recipe_hash, images.LABEL_BASE: "base:1",
            images.LABEL_BASE_DIGEST: BASE_ID, images.LABEL_RUNTIME: "python3.12",
            images.LABEL_ARCH: "x86_64",
        }  # fmt: skip

    found = images.describe_images(
        [
            info(f"nativebuild/build-python3.12:{current}-x86_64", labels(current)),
            info("nativebuild/build-python3.12:000000000000-x86_64", labels("000000000000")),
            info("nativebuild/build-python3.12:hand-made", {}),
        ],
        recipe,
    )
    assert [(f.info.tags[0], f.current) for f in found] == [
        ("nativebuild/build-python3.12:000000000000-x86_64", False),
        (f"nativebuild/build-python3.12:{current}-x86_64", True),
    ]
    assert found[1].to_json()["base_digest"] == BASE_ID


# --- pin ------------------------------------------------------------------------------------

HEADER = """\
# Digests of the default images.
# Example entry:
# "public.ecr.aws/lambda/python:3.12-x86_64" = "sha256:0123..."
[digests]
"""


def test_pin_references_cover_runtime_and_build_images_per_arch() -> None:
    refs = images.pin_references(runtimes().values(), Architecture)
    assert len(refs) == len(runtimes()) * 2 * 2
    assert "public.ecr.aws/lambda/python:3.12-arm64" in refs
    assert "public.ecr.aws/sam/build-python3.9:latest-x86_64" in refs
    only = images.pin_references([get_runtime("python3.13")], [Architecture.ARM64])
    assert only == [
        "public.ecr.aws/lambda/python:3.13-arm64",
        "public.ecr.aws/sam/build-python3.13:latest-arm64",
    ]


def test_render_keeps_the_header_and_sorts_entries() -> None:
    text = images.render_digests(HEADER, {"z/img:1": PINNED, "a/img:1": BASE_ID})
    assert text.startswith(HEADER)
    assert text.endswith(f'"a/img:1" = "{BASE_ID}"\n"z/img:1" = "{PINNED}"\n')
    assert images.read_digests(text) == {"a/img:1": BASE_ID, "z/img:1": PINNED}


def test_render_adds_the_table_when_missing() -> None:
    text = images.render_digests("# only a comment\n", {"a/img:1": PINNED})
    assert images.read_digests(text) == {"a/img:1": PINNED}


@pytest.mark.parametrize(
    ("text", "digests", "match"),
    [
        (HEADER, {"a/img:1": "latest"}, "not a sha256 digest"),
        (HEADER + "\n[other]\nx = 1\n", {"a/img:1": PINNED}, "after \\[digests\\]"),
    ],
)
def test_render_refuses_what_it_cannot_write_faithfully(
    text: str, digests: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        images.render_digests(text, digests)


def test_pin_records_what_resolves_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "images.toml"
    path.write_text(HEADER + f'"old/img:1" = "{BASE_ID}"\n"gone/img:1" = "{BASE_ID}"\n')
    runner = FakeImageRunner(registry={"old/img:1": PINNED, "new/img:1": BASE_ID})

    result = images.pin(
        ["old/img:1", "new/img:1", "gone/img:1"], runner=runner, path=path, reporter=NullReporter()
    )

    assert result.digests == {"old/img:1": PINNED, "new/img:1": BASE_ID}
    assert result.changed == ("old/img:1", "new/img:1")
    assert set(result.failed) == {"gone/img:1"}
    assert images.read_digests(path.read_text()) == {
        "old/img:1": PINNED,
        "new/img:1": BASE_ID,
        "gone/img:1": BASE_ID,
    }
    assert path.read_text().startswith(HEADER)
    assert [p.name for p in tmp_path.iterdir()] == ["images.toml"], "no temporary file left"


def test_pin_without_changes_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "images.toml"
    original = HEADER + f'"a/img:1"   =   "{PINNED}"  # odd spacing\n'
    path.write_text(original)
    result = images.pin(
        ["a/img:1"], runner=FakeImageRunner(registry={"a/img:1": PINNED}), path=path,
        reporter=NullReporter(),
    )  # fmt: skip
    assert result.changed == ()
    assert path.read_text() == original


def test_shipped_images_toml_is_readable() -> None:
    digests = images.read_digests(images.images_toml_path().read_text())
    assert all(images.DIGEST_PATTERN.match(d) for d in digests.values())
