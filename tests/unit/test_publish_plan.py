"""Pure publish planning: where each archive goes, and publish/update/upload/skip and why."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nativebuild.archive.budget import DIRECT_UPLOAD_LIMIT, UNZIPPED_LIMIT
from nativebuild.aws.publish_plan import (
    ManifestArchive,
    Outcome,
    PlannedAction,
    PublishOptions,
    PublishResult,
    Remote,
    S3Prefix,
    intents,
    load_manifest,
    merged_layers,
    plan_publish,
)
from nativebuild.errors import (
    ArchitectureMismatchError,
    ArchiveTooLargeError,
    ConfigError,
    NativebuildError,
    PublishError,
)


def archive(
    kind: str = "function",
    arch: str = "x86_64",
    *,
    data: bytes = b"zip",
    size: int | None = None,
    unzipped: int = 100,
    layers: tuple[str, ...] = (),
) -> ManifestArchive:
    digest = hashlib.sha256(data + kind.encode() + arch.encode()).digest()
    name = "deps" if kind == "layer" else "orders"
    return ManifestArchive(
        name=name, kind=kind, path=Path(f"/dist/{name}-python3.12-{arch}.zip"),
        runtime="python3.12", architecture=arch, sha256=digest.hex(),
        code_sha256=base64.b64encode(digest).decode(), size=size or len(data),
        unzipped_size=unzipped, layers=layers,
        compatible_runtimes=("python3.12",) if kind == "layer" else (),
        compatible_architectures=(arch,) if kind == "layer" else (),
    )  # fmt: skip


def function_remote(a: ManifestArchive, *, sha: str = "other", arch: str | None = None) -> Remote:
    return Remote(
        exists=True, code_sha256=sha, arn="arn:aws:lambda:us-east-1:1:function:f",
        version="$LATEST", architectures=(arch or a.architecture,),
    )  # fmt: skip


def test_layer_with_the_latest_versions_hash_is_skipped_and_names_that_version() -> None:
    layer = archive("layer")
    options = PublishOptions(layer_name="deps")
    found = intents([layer], options)
    remote = Remote(
        exists=True, code_sha256=layer.code_sha256, arn="arn:x:layer:deps:4", version="4"
    )
    (action,) = plan_publish(found, {"layer:deps": remote}, options).actions
    assert (action.action, action.target) == ("skip", "layer:deps")
    assert "(4)" in action.reason


def test_changed_or_new_layer_is_published_inline() -> None:
    layer = archive("layer")
    options = PublishOptions(layer_name="deps")
    found = intents([layer], options)
    changed = Remote(exists=True, code_sha256="old", arn="arn:x:layer:deps:4", version="4")
    (action,) = plan_publish(found, {"layer:deps": changed}, options).actions
    assert (action.action, action.reason, action.s3_key) == (
        "publish", "changed since the latest version", None,
    )  # fmt: skip
    (new,) = plan_publish(found, {}, options).actions
    assert (new.action, new.reason) == ("publish", "new layer")


def test_function_with_the_same_code_is_skipped_otherwise_updated() -> None:
    fn = archive()
    options = PublishOptions(functions=("orders",))
    found = intents([fn], options)
    same = function_remote(fn, sha=fn.code_sha256)
    assert plan_publish(found, {"function:orders": same}, options).actions[0].action == "skip"
    other = function_remote(fn)
    assert plan_publish(found, {"function:orders": other}, options).actions[0].action == "update"


def test_missing_function_is_a_publish_error_not_a_creation() -> None:
    options = PublishOptions(functions=("orders",))
    with pytest.raises(PublishError, match="does not exist"):
        plan_publish(intents([archive()], options), {}, options)


def test_function_on_another_architecture_is_refused() -> None:
    fn = archive(arch="arm64")
    options = PublishOptions(functions=("orders",))
    remote = function_remote(fn, arch="x86_64")
    with pytest.raises(ArchitectureMismatchError, match=r"built for arm64.*runs on x86_64"):
        plan_publish(intents([fn], options), {"function:orders": remote}, options)


def test_arch_template_and_arch_equals_name_send_each_archive_to_its_function() -> None:
    x86, arm = archive(arch="x86_64"), archive(arch="arm64")
    templ = intents([x86, arm], PublishOptions(functions=("orders-{arch}",)))
    assert [(i.archive.architecture, i.target) for i in templ] == [
        ("x86_64", "function:orders-x86_64"), ("arm64", "function:orders-arm64"),
    ]  # fmt: skip
    explicit = intents([x86, arm], PublishOptions(functions=("arm64=graviton", "x86_64=intel")))
    assert [(i.archive.architecture, i.name) for i in explicit] == [
        ("arm64", "graviton"), ("x86_64", "intel"),
    ]  # fmt: skip


def test_two_different_archives_to_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="would both go to function:f") as err:
        intents([archive(arch="x86_64"), archive(arch="arm64")], PublishOptions(functions=("f",)))
    assert "{arch}" in str(err.value.hint)
    layers = [archive("layer", "x86_64"), archive("layer", "arm64")]
    with pytest.raises(ConfigError, match="would both go to layer:deps") as err:
        intents(layers, PublishOptions(layer_name="deps"))
    assert "--layer-name" in str(err.value.hint)


def test_bad_function_spec_and_missing_archives_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ARCH=NAME"):
        intents([archive()], PublishOptions(functions=("sparc=f",)))
    with pytest.raises(ConfigError, match="no arm64"):
        intents([archive()], PublishOptions(functions=("arm64=f",)))
    with pytest.raises(ConfigError, match="no layer archive"):
        intents([archive()], PublishOptions(layer_name="deps"))
    with pytest.raises(ConfigError, match="Nothing to publish"):
        intents([archive()], PublishOptions())


def test_s3_keys_are_content_addressed_and_present_objects_are_skipped() -> None:
    fn = archive()
    s3 = S3Prefix.parse("s3://bucket/team/")
    options = PublishOptions(s3=s3)
    (intent,) = intents([fn], options)
    assert intent.name == f"team/{fn.sha256}/{fn.file}"
    assert intent.target == intent.name
    assert plan_publish([intent], {}, options).actions[0].action == "upload"
    present = {intent.target: Remote(exists=True)}
    assert plan_publish([intent], present, options).actions[0].action == "skip"
    assert S3Prefix.parse("s3://bucket").key(fn) == f"{fn.sha256}/{fn.file}"
    with pytest.raises(ConfigError):
        S3Prefix.parse("https://bucket/x")


def test_over_the_direct_upload_limit_goes_through_s3_or_is_refused() -> None:
    big = archive(size=DIRECT_UPLOAD_LIMIT + 1)
    remote = {"function:orders": function_remote(big)}
    without = PublishOptions(functions=("orders",))
    with pytest.raises(ArchiveTooLargeError, match="direct-upload") as err:
        plan_publish(intents([big], without), remote, without)
    assert "--s3" in str(err.value.hint)
    with_s3 = PublishOptions(functions=("orders",), s3=S3Prefix.parse("s3://bkt/p"))
    actions = plan_publish(intents([big], with_s3), remote, with_s3).actions
    assert [a.action for a in actions] == ["upload", "update"]  # the upload comes first
    assert actions[1].s3_key == actions[0].intent.name


@pytest.mark.parametrize(
    ("size", "inline"),
    [
        (DIRECT_UPLOAD_LIMIT - 1, True),
        (DIRECT_UPLOAD_LIMIT, True),
        (DIRECT_UPLOAD_LIMIT + 1, False),
    ],
)
def test_both_sides_of_the_direct_upload_limit(size: int, inline: bool) -> None:
    fn = archive(size=size)
    remote = {"function:orders": function_remote(fn)}
    without = PublishOptions(functions=("orders",))
    if inline:
        (action,) = plan_publish(intents([fn], without), remote, without).actions
        assert (action.action, action.s3_key) == ("update", None)
        return
    with pytest.raises(ArchiveTooLargeError, match=f"{size:,} bytes zipped"):
        plan_publish(intents([fn], without), remote, without)


@pytest.mark.parametrize(
    ("unzipped", "refused"),
    [(UNZIPPED_LIMIT - 1, False), (UNZIPPED_LIMIT, True), (UNZIPPED_LIMIT + 1, True)],
)
def test_both_sides_of_the_unzipped_limit(unzipped: int, refused: bool) -> None:
    layer = archive("layer", unzipped=unzipped)
    options = PublishOptions(layer_name="deps")
    if not refused:
        (action,) = plan_publish(intents([layer], options), {}, options).actions
        assert action.action == "publish"
        return
    with pytest.raises(ArchiveTooLargeError, match=f"{unzipped:,} bytes unzipped"):
        plan_publish(intents([layer], options), {}, options)


def test_over_the_unzipped_limit_is_refused_even_with_s3() -> None:
    huge = archive("layer", unzipped=UNZIPPED_LIMIT + 1)
    options = PublishOptions(layer_name="deps", s3=S3Prefix.parse("s3://bkt/p"))
    with pytest.raises(ArchiveTooLargeError, match="unzipped"):
        plan_publish(intents([huge], options), {}, options)


def test_function_attaches_the_layers_of_its_build_only() -> None:
    layer = archive("layer")
    fn = archive(layers=(layer.file, "elsewhere.zip"))
    options = PublishOptions(layer_name="deps", functions=("orders",))
    found = intents([layer, fn], options)
    actions = plan_publish(found, {"function:orders": function_remote(fn)}, options).actions
    assert [a.target for a in actions] == ["layer:deps", "function:orders"]
    assert actions[1].attach == ("layer:deps",)
    alone = PublishOptions(functions=("orders",))
    only = plan_publish(
        intents([layer, fn], alone), {"function:orders": function_remote(fn)}, alone
    )
    assert only.actions[0].attach == ()


def test_merged_layers_replace_an_older_version_in_place() -> None:
    current = ("arn:l:other:1", "arn:l:deps:3", "arn:l:tail:9")
    assert merged_layers(current, ["arn:l:deps:4"]) == (
        "arn:l:other:1",
        "arn:l:deps:4",
        "arn:l:tail:9",
    )
    assert merged_layers(current[:1], ["arn:l:deps:4"]) == ("arn:l:other:1", "arn:l:deps:4")
    assert merged_layers(current, ["arn:l:deps:3"]) == current


def test_load_manifest_reads_the_schema_and_checks_the_files(tmp_path: Path) -> None:
    zip_path = tmp_path / "deps-python3.12-arm64.zip"
    zip_path.write_bytes(b"PK-bytes")
    entry = {
        "name": "deps", "kind": "layer", "file": zip_path.name, "runtime": "python3.12",
        "architecture": "arm64", "sha256": "ab", "code_sha256": "q=", "size": 8,
        "unzipped_size": 20, "layers": [],
        "layer": {"compatible_runtimes": ["python3.12"], "compatible_architectures": ["arm64"]},
    }  # fmt: skip
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema": "nativebuild-manifest/1", "archives": [entry]}))
    (loaded,) = load_manifest(manifest)
    assert loaded == ManifestArchive(
        name="deps", kind="layer", path=zip_path.resolve(), runtime="python3.12",
        architecture="arm64", sha256="ab", code_sha256="q=", size=8, unzipped_size=20,
        layers=(), compatible_runtimes=("python3.12",), compatible_architectures=("arm64",),
    )  # fmt: skip
    function = {
        **entry, "name": "orders", "kind": "function", "layers": [zip_path.name, 7],
        "unzipped_size": None, "layer": None,
    }  # fmt: skip
    manifest.write_text(json.dumps({"schema": "nativebuild-manifest/1", "archives": [function]}))
    (fn,) = load_manifest(manifest)
    assert (fn.name, fn.kind, fn.layers, fn.unzipped_size) == (
        "orders",
        "function",
        (zip_path.name, "7"),
        0,
    )
    assert (fn.compatible_runtimes, fn.compatible_architectures) == ((), ())
    manifest.write_text(json.dumps({"schema": "nativebuild-manifest/1", "archives": [entry]}))
    zip_path.write_bytes(b"PK-different-size")
    with pytest.raises(ConfigError, match="not the file the manifest describes") as caught:
        load_manifest(manifest)
    assert caught.value.hint == "Build again: the manifest and archives go together."
    manifest.write_text(json.dumps({"schema": "other/2", "archives": []}))
    with pytest.raises(ConfigError, match="not a nativebuild manifest") as caught:
        load_manifest(manifest)
    assert caught.value.hint == "Build again with this nativebuild version."
    with pytest.raises(ConfigError, match="No manifest") as caught:
        load_manifest(tmp_path / "missing.json")
    assert caught.value.hint == (
        "Run `nativebuild build` first, or pass --manifest DIST/manifest.json."
    )


LOAD_UNDER_C_LOCALE = """
import locale, sys
from pathlib import Path
from nativebuild.aws.publish_plan import load_manifest
print(locale.getpreferredencoding(False))
print(ascii(load_manifest(Path(sys.argv[1]))[0].name))
"""


def test_a_manifest_is_read_as_utf_8_whatever_the_locale(tmp_path: Path) -> None:
    zip_path = tmp_path / "deps.zip"
    zip_path.write_bytes(b"PK")
    entry = {
        "name": "dépendances", "kind": "layer", "file": zip_path.name, "runtime": "python3.12",
        "architecture": "arm64", "sha256": "ab", "code_sha256": "q=", "size": 2,
        "unzipped_size": 2, "layers": [], "layer": None,
    }  # fmt: skip
    manifest = tmp_path / "manifest.json"  # JSON is UTF-8 (RFC 8259), as another tool writes it
    document = {"schema": "nativebuild-manifest/1", "archives": [entry]}
    manifest.write_bytes(json.dumps(document, ensure_ascii=False).encode())
    assert load_manifest(manifest)[0].name == "dépendances"  # here, and under the C locale:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO"))}
    env |= {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_UNDER_C_LOCALE, str(manifest)],
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    encoding, name = done.stdout.decode().splitlines()
    assert encoding.lower() not in ("utf-8", "utf8"), "the C locale must not decode UTF-8 here"
    assert name == ascii("dépendances")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "Cannot read the manifest"),
        ('{"schema": "nativebuild-manifest/1", "archives": [{"name": "x"}]}', "is malformed"),
    ],
)
def test_an_unreadable_manifest_says_to_build_again(
    tmp_path: Path, text: str, problem: str
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_manifest(manifest)
    assert str(caught.value).startswith(
        f"{problem} {manifest}" if problem.startswith("Cannot") else f"The manifest {manifest}"
    )
    assert problem in str(caught.value)
    assert caught.value.hint == "Build again to rewrite it."


def test_every_decision_records_what_aws_has_and_why() -> None:
    """The whole PlannedAction, for each kind of decision: the publish step and the report
    read the remote, the reason and the S3 key from it."""
    s3 = S3Prefix.parse("s3://bkt/p")
    layer = archive("layer", size=DIRECT_UPLOAD_LIMIT + 1)  # published from its S3 object
    fn = archive(layers=(layer.file,))  # small: updated inline
    options = PublishOptions(layer_name="deps", functions=("orders",), s3=s3)
    found = intents([layer, fn], options)
    by_target = {i.target: i for i in found}
    key_of = {a: s3.key(a) for a in (fn, layer)}
    absent, present = Remote(exists=False), Remote(exists=True)
    same_layer = Remote(exists=True, code_sha256=layer.code_sha256, version="4")
    same_fn = function_remote(fn, sha=fn.code_sha256)
    other_fn = function_remote(fn)
    remotes: dict[str, Remote] = {
        key_of[fn]: present, key_of[layer]: absent, "layer:deps": same_layer,
        "function:orders": other_fn,
    }  # fmt: skip
    plan = plan_publish(found, remotes, options)
    assert plan.s3 == s3
    assert plan.actions == (
        PlannedAction(
            intent=by_target[key_of[layer]], action="upload", remote=absent, reason="not in S3"
        ),
        PlannedAction(
            intent=by_target[key_of[fn]], action="skip", remote=present,
            reason="already in S3: the key is the archive's sha256",
        ),
        PlannedAction(
            intent=by_target["layer:deps"], action="skip", remote=same_layer,
            reason="the latest version (4) has the same CodeSha256",
        ),
        PlannedAction(
            intent=by_target["function:orders"], action="update", remote=other_fn,
            reason="the code differs", attach=("layer:deps",),
        ),
    )  # fmt: skip
    remotes["function:orders"] = same_fn
    remotes.pop("layer:deps")
    plan = plan_publish(found, remotes, options)
    assert plan.actions[2] == PlannedAction(
        intent=by_target["layer:deps"], action="publish", remote=absent, reason="new layer",
        s3_key=key_of[layer],
    )  # fmt: skip
    assert plan.actions[3] == PlannedAction(
        intent=by_target["function:orders"], action="skip", remote=same_fn,
        reason="the function's code has the same CodeSha256", attach=("layer:deps",),
    )  # fmt: skip
    inline = PublishOptions(functions=("orders",))
    assert plan_publish(intents([fn], inline), remotes, inline).s3 is None


@pytest.mark.parametrize(
    ("build", "message", "hint"),
    [
        (
            lambda: plan_publish(
                intents([archive()], PublishOptions(functions=("orders",))),
                {},
                PublishOptions(functions=("orders",)),
            ),
            "Lambda function 'orders' does not exist (or is in another region).",
            "Create it first (nativebuild updates code, it does not create functions).",
        ),
        (
            lambda: plan_publish(
                intents([archive(arch="arm64")], PublishOptions(functions=("orders",))),
                {"function:orders": Remote(exists=True, architectures=("x86_64", "other"))},
                PublishOptions(functions=("orders",)),
            ),
            (
                "orders-python3.12-arm64.zip is built for arm64, but function 'orders' runs on "
                "x86_64, other."
            ),
            "Pass --function ARCH=NAME to send each architecture's archive to its function.",
        ),
        (
            lambda: intents([archive()], PublishOptions(functions=("arm64=f",))),
            "--function 'arm64=f': the manifest has no arm64 archive.",
            "Build for that architecture, or drop the flag.",
        ),
        (
            lambda: intents([archive()], PublishOptions(layer_name="deps")),
            "--layer-name is given, but the manifest has no layer archive.",
            "Build with --kind layer or --kind split.",
        ),
        (
            lambda: intents([archive("layer")], PublishOptions(functions=("orders",))),
            "--function is given, but the manifest has no function archive.",
            "Build with --kind function or --kind split.",
        ),
        (
            lambda: plan_publish(
                intents(
                    [archive("layer", unzipped=UNZIPPED_LIMIT)], PublishOptions(layer_name="d")
                ),
                {},
                PublishOptions(layer_name="d"),
            ),
            (
                "deps-python3.12-x86_64.zip is 262,144,000 bytes unzipped: over Lambda's "
                "262,144,000-byte limit (it must be smaller), so layer:d would refuse it."
            ),
            "Make it smaller (--slim, --exclude) or split it into a function and layers.",
        ),
    ],
)
def test_refusals_say_what_and_what_to_do(build: Any, message: str, hint: str) -> None:
    with pytest.raises(NativebuildError) as caught:
        build()
    assert (str(caught.value), caught.value.hint) == (message, hint)


def test_templates_name_the_runtime_and_the_architecture() -> None:
    (intent,) = intents([archive()], PublishOptions(functions=("fn-{runtime}-{arch}",)))
    assert intent.name == "fn-python3.12-x86_64"


def test_every_archive_goes_to_s3_before_its_targets() -> None:
    fn, layer = archive(), archive("layer")
    s3 = S3Prefix.parse("s3://bkt")
    found = intents([fn, layer], PublishOptions(layer_name="deps", functions=("orders",), s3=s3))
    assert [i.target for i in found] == [
        s3.key(fn), s3.key(layer), "layer:deps", "function:orders"
    ]  # fmt: skip


def test_one_archive_listed_twice_goes_once_and_two_archives_to_one_name_are_refused() -> None:
    twice = [archive(), archive()]  # equal archives, two records in the manifest
    assert twice[0] is not twice[1]
    options = PublishOptions(functions=("orders",))
    assert [i.target for i in intents(twice, options)] == ["function:orders"]
    for flag, options, pair in (
        ("--function", PublishOptions(functions=("f",)), [archive(arch="x86_64"), archive(arch="arm64")]),
        ("--layer-name", PublishOptions(layer_name="f"), [archive("layer", "x86_64"), archive("layer", "arm64")]),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            intents(pair, options)
        target = "function:f" if flag == "--function" else "layer:f"
        assert str(caught.value) == (
            f"{pair[0].file} and {pair[1].file} would both go to {target} "
            "(each publish would replace the other's)."
        )
        assert caught.value.hint == f"Put {{arch}} (and {{runtime}}) in {flag}."


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bkt", "bkt", ""),
        (" s3://bkt/ ", "bkt", ""),
        ("s3://bkt/team/pX/", "bkt", "team/pX"),  # only slashes are stripped
    ],
)
def test_an_s3_url_names_a_bucket_and_a_prefix(url: str, bucket: str, prefix: str) -> None:
    assert S3Prefix.parse(url) == S3Prefix(bucket=bucket, prefix=prefix)


@pytest.mark.parametrize("url", ["https://bkt/p", "s3://Not_A_Bucket/p", "s3://bkt/p?versionId=1"])
def test_an_s3_url_that_is_not_a_bucket_and_prefix_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        S3Prefix.parse(url)
    assert str(caught.value) == (
        f"Invalid --s3 {url!r}: expected s3://bucket or s3://bucket/prefix."
    )


def test_an_image_archive_keeps_its_manifest_digest_and_never_goes_to_s3(tmp_path: Path) -> None:
    zip_path = tmp_path / "orders-python3.12-x86_64.zip"
    zip_path.write_bytes(b"PK-bytes")
    tar_path = tmp_path / "orders-python3.12-x86_64.tar"
    tar_path.write_bytes(b"image tar")
    common = {"name": "orders", "runtime": "python3.12", "architecture": "x86_64", "layers": []}
    entries = [
        {**common, "kind": "function", "file": zip_path.name, "sha256": "ab", "code_sha256": "q=",
         "size": 8},
        {**common, "kind": "image", "file": tar_path.name, "sha256": "cd", "code_sha256": "r=",
         "size": 9, "image": {"manifest_digest": "sha256:" + "e" * 64}},
    ]  # fmt: skip
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema": "nativebuild-manifest/1", "archives": entries}))
    function, image = load_manifest(manifest)
    assert (function.manifest_digest, image.manifest_digest) == (None, "sha256:" + "e" * 64)
    options = PublishOptions(s3=S3Prefix.parse("s3://bucket/team/"))
    assert [i.archive.kind for i in intents([function, image], options)] == ["function"]


def _outcome(target: str, action: str) -> Outcome:
    return Outcome(
        archive="a.zip", target=target, arn=f"arn:{target}", version="3", code_sha256="q=",
        reason=f"because {target}", action=action,
    )  # fmt: skip


def test_publish_results_add_up_and_report_every_field() -> None:
    layers = PublishResult(published=(_outcome("l", "publish"),), skipped=())
    functions = PublishResult(
        published=(_outcome("f", "update"),), skipped=(_outcome("g", "skip"),), dry_run=True
    )
    both = layers + functions
    assert both == PublishResult(
        published=(_outcome("l", "publish"), _outcome("f", "update")),
        skipped=(_outcome("g", "skip"),),
        dry_run=True,
    )
    assert (layers + layers).dry_run is False
    assert both.to_json() == {
        "published": [
            {"archive": "a.zip", "target": "l", "arn": "arn:l", "version": "3",
             "code_sha256": "q=", "reason": "because l", "action": "publish"},
            {"archive": "a.zip", "target": "f", "arn": "arn:f", "version": "3",
             "code_sha256": "q=", "reason": "because f", "action": "update"},
        ],
        "skipped": [
            {"archive": "a.zip", "target": "g", "arn": "arn:g", "version": "3",
             "code_sha256": "q=", "reason": "because g", "action": "skip"},
        ],
        "dry_run": True,
    }  # fmt: skip
