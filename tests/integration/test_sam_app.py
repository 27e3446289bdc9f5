"""``nativebuild sam build`` on examples/sam-app with a real Docker engine, the stand-in images
(both architectures; arm64 under QEMU), real PyPI and the real SAM CLI: the functions run in
the runtime stand-ins with their layer, ``sam package`` uploads our archives byte for byte (to
moto's S3 on 127.0.0.1), a warm rebuild starts no container and writes the same bytes, and
``sam build`` with the makefile route leaves exactly the files of our archives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from nativebuild.sam.template import dump_template, load_template
from tests.moto_server import FAKE_CREDENTIALS, moto_endpoint
from tests.sam_cli import ROOT, run_sam, sam

__all__ = ["moto_endpoint", "sam"]  # fixtures, used by name

pytestmark = [pytest.mark.docker, pytest.mark.network]

EXAMPLE = ROOT / "examples" / "sam-app"
RUNTIME = "python3.13"  # the example's default, the stand-ins' (trixie, glibc 2.41)
IMAGES = {
    "NATIVEBUILD_BUILD_IMAGE": "nativebuild-test/build-{runtime}:{arch}",
    "NATIVEBUILD_RUNTIME_IMAGE": "nativebuild-test/runtime-{runtime}:{arch}",
    "NATIVEBUILD_GLIBC": "2.41",
}
ARCHIVES = {
    "SharedDepsLayer": f"SharedDepsLayer/SharedDepsLayer-{RUNTIME}-x86_64.zip",
    "OrdersFunction": f"OrdersFunction/OrdersFunction-{RUNTIME}-x86_64.zip",
    "ReportsFunction": f"ReportsFunction/ReportsFunction-{RUNTIME}-arm64.zip",
}


@dataclass
class Build:
    code: int
    output: dict[str, Any]
    stderr: str

    def resource(self, logical_id: str) -> dict[str, Any]:
        (found,) = [r for r in self.output["resources"] if r["logical_id"] == logical_id]
        return found  # type: ignore[no-any-return]


def nativebuild_sam(app: Path, cache: Path, *extra: str) -> Build:
    """The command as a user runs it (flags, not the NATIVEBUILD_* variables)."""
    args = [
        sys.executable, "-m", "nativebuild", "sam", "build",
        "--build-image", IMAGES["NATIVEBUILD_BUILD_IMAGE"],
        "--runtime-image", IMAGES["NATIVEBUILD_RUNTIME_IMAGE"],
        "--glibc", IMAGES["NATIVEBUILD_GLIBC"], "--cache-dir", str(cache), "--json", *extra,
    ]  # fmt: skip
    done = subprocess.run(
        args, cwd=app, capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, "SOURCE_DATE_EPOCH": ""},
    )  # fmt: skip
    output = json.loads(done.stdout) if done.returncode == 0 else {}
    return Build(done.returncode, output, done.stderr)


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sam-app")


@pytest.fixture(scope="module")
def cold(workspace: Path) -> tuple[Path, Path, Build]:
    """The example, copied, built once from an empty cache."""
    app = workspace / "app"
    shutil.copytree(EXAMPLE, app)
    cache = workspace / "cache"
    return app, cache, nativebuild_sam(app, cache)


def test_cold_build_of_both_architectures(cold: tuple[Path, Path, Build]) -> None:
    app, _, build = cold
    assert build.code == 0, build.stderr
    assert set(build.output) == {"resources", "wheels", "containers_started", "deprecations"}
    assert build.output["containers_started"] > 0  # simplejson compiled, runtime images probed
    build_dir = app / ".aws-sam" / "build"
    for logical_id, archive in ARCHIVES.items():
        resource = build.resource(logical_id)
        assert resource["status"] == "built"
        assert resource["archive"] == str(build_dir / archive)
    compiled = [w for w in build.output["wheels"] if w["source"] == "compiled"]
    assert [(w["name"], w["arch"]) for w in compiled] == [("simplejson", "x86_64")]
    layer = zip_files(build_dir / ARCHIVES["SharedDepsLayer"])
    assert "python/aws_lambda_powertools/__init__.py" in layer
    orders = zip_files(build_dir / ARCHIVES["OrdersFunction"])
    assert "simplejson/_speedups.cpython-313-x86_64-linux-gnu.so" in orders
    assert orders["app.py"] == (EXAMPLE / "functions" / "orders" / "app.py").read_bytes()
    reports = zip_files(build_dir / ARCHIVES["ReportsFunction"])
    assert "yaml/_yaml.cpython-313-aarch64-linux-gnu.so" in reports
    assert "markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so" in reports
    template = load_template(build_dir / "template.yaml")
    for logical_id, archive in ARCHIVES.items():
        properties = template["Resources"][logical_id]["Properties"]
        assert archive in (properties.get("CodeUri"), properties.get("ContentUri"))


def extract(archive: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


@pytest.mark.parametrize(
    ("logical_id", "arch", "event", "expected"),
    [
        (
            "OrdersFunction", "x86_64",
            {"body": '{"items": [{"price": "2.50", "quantity": 3}]}'},
            {"statusCode": 200, "body": '{"total": 7.50, "c_extension": true}'},
        ),
        (
            "ReportsFunction", "arm64", {"report": "title: <Q3>"},
            {"statusCode": 200, "body": "<h1>&lt;Q3&gt;</h1>", "libyaml": True},
        ),
    ],
)  # fmt: skip
def test_functions_run_with_their_layer_in_the_runtime_standins(
    cold: tuple[Path, Path, Build], workspace: Path, logical_id: str, arch: str,
    event: dict[str, str], expected: dict[str, Any],
) -> None:  # fmt: skip
    """As Lambda mounts them: the function at /var/task, the layer at /opt (read-only), the
    layer's python/ on sys.path, as an unprivileged user without network."""
    app, _, build = cold
    assert build.code == 0, build.stderr
    build_dir = app / ".aws-sam" / "build"
    task = extract(build_dir / ARCHIVES[logical_id], workspace / f"task-{logical_id}")
    opt = extract(build_dir / ARCHIVES["SharedDepsLayer"], workspace / f"opt-{logical_id}")
    code = f"import json, app; print(json.dumps(app.handler({event!r}, None)))"
    platform = "linux/amd64" if arch == "x86_64" else "linux/arm64"
    done = subprocess.run(
        ["docker", "run", "--rm", "--platform", platform, "--network", "none", "-u", "65534:65534",
         "-v", f"{task}:/var/task:ro", "-v", f"{opt}:/opt:ro", "-w", "/var/task",
         "-e", "PYTHONPATH=/var/task:/opt/python", f"nativebuild-test/runtime-{RUNTIME}:{arch}",
         f"/var/lang/bin/{RUNTIME}", "-c", code],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_warm_rebuild_starts_no_container_and_writes_the_same_bytes(
    cold: tuple[Path, Path, Build],
) -> None:
    app, cache, build = cold
    assert build.code == 0, build.stderr
    build_dir = app / ".aws-sam" / "build"
    before = {name: (build_dir / path).read_bytes() for name, path in ARCHIVES.items()}
    template = (build_dir / "template.yaml").read_bytes()
    warm = nativebuild_sam(app, cache)
    assert warm.code == 0, warm.stderr
    assert warm.output["containers_started"] == 0
    assert {r["logical_id"]: r["status"] for r in warm.output["resources"]} == dict.fromkeys(
        ARCHIVES, "cached"
    )
    assert {name: (build_dir / path).read_bytes() for name, path in ARCHIVES.items()} == before
    assert (build_dir / "template.yaml").read_bytes() == template


def test_verify_imports_each_function_with_its_layer(cold: tuple[Path, Path, Build]) -> None:
    """--verify: every function's modules imported in its runtime stand-in (arm64 under QEMU)
    with the template's layer at /opt; the layer is not verified again on its own."""
    app, cache, build = cold
    assert build.code == 0, build.stderr
    verified = nativebuild_sam(app, cache, "--verify")
    assert verified.code == 0, verified.stderr
    err = " ".join(verified.stderr.split())
    for name, arch in (("OrdersFunction", "x86_64"), ("ReportsFunction", "arm64")):
        assert f"verified {name}-{RUNTIME}-{arch}.zip:" in err
        assert f"modules import in nativebuild-test/runtime-{RUNTIME}:{arch}" in err
    assert "verified SharedDepsLayer" not in err


def test_sam_package_uploads_our_archives_byte_for_byte(
    cold: tuple[Path, Path, Build], sam: Path, moto_endpoint: str, workspace: Path
) -> None:
    app, _, build = cold
    assert build.code == 0, build.stderr
    bucket = f"sam-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    env = {
        **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(workspace / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workspace / "no-credentials"),
    }  # fmt: skip
    packaged = workspace / "packaged.yaml"
    done = run_sam(
        sam, ["package", "--s3-bucket", bucket, "--output-template-file", str(packaged)],
        cwd=app, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    resources = load_template(packaged)["Resources"]
    build_dir = app / ".aws-sam" / "build"
    for logical_id, archive in ARCHIVES.items():
        properties = resources[logical_id]["Properties"]
        uri = properties.get("CodeUri") or properties.get("ContentUri")
        assert uri.startswith(f"s3://{bucket}/"), uri
        key = uri.removeprefix(f"s3://{bucket}/")
        uploaded = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert uploaded == (build_dir / archive).read_bytes(), logical_id


MAKEFILE = """\
build-{logical_id}:
\tnativebuild build {kind}--src . --exclude Makefile --runtime {runtime} --arch {arch} --artifacts-dir "$(ARTIFACTS_DIR)"
"""


def test_sam_build_with_the_makefile_route_leaves_the_same_files(
    cold: tuple[Path, Path, Build], sam: Path, workspace: Path
) -> None:
    """Every resource of the example through `BuildMethod: makefile` and the README's one-line
    target, built by the real `sam build` (no container of its own): SAM's build directory
    holds exactly the files of the archives `nativebuild sam build` wrote."""
    app, cache, build = cold
    assert build.code == 0, build.stderr
    made = workspace / "makefile-app"
    shutil.copytree(EXAMPLE, made)
    document = load_template(made / "template.yaml")
    resources = document["Resources"]
    folders = {
        "SharedDepsLayer": ("layers/shared", "x86_64", "--kind layer "),
        "OrdersFunction": ("functions/orders", "x86_64", ""),
        "ReportsFunction": ("functions/reports", "arm64", ""),
    }
    for logical_id, (folder, arch, kind) in folders.items():
        resources[logical_id].setdefault("Metadata", {})["BuildMethod"] = "makefile"
        resources[logical_id]["Metadata"].pop("BuildArchitecture", None)
        text = MAKEFILE.format(logical_id=logical_id, kind=kind, runtime=RUNTIME, arch=arch)
        (made / folder / "Makefile").write_text(text)
    resources["SharedDepsLayer"]["Metadata"]["BuildArchitecture"] = "x86_64"
    (made / "template.yaml").write_text(dump_template(document))
    env = {
        **IMAGES, "NATIVEBUILD_CACHE_DIR": str(cache),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    done = run_sam(sam, ["build"], cwd=made, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for logical_id, archive in ARCHIVES.items():
        ours = zip_files(app / ".aws-sam" / "build" / archive)
        assert tree_files(made / ".aws-sam" / "build" / logical_id) == ours, logical_id
