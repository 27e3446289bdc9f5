"""The pure half of compiling: cache keys, the container spec, the jobs file, built-wheel checks,
and the in-container driver's unpacking, run with the host's Python."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from nativebuild.cache.keys import build_key
from nativebuild.engine.runner import ContainerSpec
from nativebuild.errors import CompileError
from nativebuild.index.pip_config import CA_BUNDLE_IN_CONTAINER, NETRC_IN_CONTAINER, IndexSettings
from nativebuild.pins import Pin
from nativebuild.sdists.build import (
    DRIVER,
    DRIVER_IN_CONTAINER,
    REPAIR,
    REPAIR_IN_CONTAINER,
    CompileJob,
    build_environment,
    check_built_wheel,
    compile_key,
    compile_key_fields,
    compile_spec,
    jobs_document,
    manifest_key,
)
from nativebuild.targets import Architecture, GlibcVersion, Target, expand_image, get_runtime

X86, ARM = Architecture.X86_64, Architecture.ARM64
IMAGE_ID = "sha256:" + "1" * 64

PIN = Pin(
    name="markupsafe",
    version="2.1.5",
    filename="MarkupSafe-2.1.5.tar.gz",
    url="https://files.example/MarkupSafe-2.1.5.tar.gz",
    sha256="5" * 64,
)


def make_target(
    runtime: str = "python3.9", arch: Architecture = X86, glibc: str | None = None
) -> Target:
    row = get_runtime(runtime)
    return Target(
        runtime=row,
        arch=arch,
        glibc=GlibcVersion.parse(glibc) if glibc else row.glibc,
        build_image=expand_image(row.build_image, arch),
        runtime_image=expand_image(row.runtime_image, arch),
    )


def key(
    pin: Pin = PIN,
    target: Target | None = None,
    image_id: str = IMAGE_ID,
    settings: dict[str, str] | None = None,
) -> str:
    return compile_key(pin, target or make_target(), image_id=image_id, settings=settings or {})


# --- compile_key ---------------------------------------------------------------------------


def test_compile_key_is_stable() -> None:
    assert key() == key()
    assert key(settings={"a": "1", "b": "2"}) == key(settings={"b": "2", "a": "1"})
    assert len(key()) == 64
    int(key(), 16)


def test_compile_key_ignores_where_the_sdist_came_from() -> None:
    """Same bytes from a mirror, or behind credentials, build the same wheel."""
    mirrored = dataclasses.replace(
        PIN, url="https://user:secret@mirror.example/p/MarkupSafe-2.1.5.tar.gz"
    )
    assert key(mirrored) == key()


def test_compile_key_ignores_the_runtime_image() -> None:
    target = dataclasses.replace(make_target(), runtime_image="local/run:other")
    assert key(target=target) == key()


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"pin": dataclasses.replace(PIN, name="markupsafe2")}, id="name"),
        pytest.param({"pin": dataclasses.replace(PIN, version="2.1.4")}, id="version"),
        pytest.param({"pin": dataclasses.replace(PIN, sha256="6" * 64)}, id="sdist-sha256"),
        pytest.param({"target": make_target("python3.10")}, id="abi"),
        pytest.param({"target": make_target(arch=ARM)}, id="arch"),
        pytest.param({"target": make_target(glibc="2.17")}, id="glibc"),
        pytest.param({"image_id": "sha256:" + "2" * 64}, id="image-id"),
        pytest.param({"settings": {"CFLAGS": "-O2"}}, id="settings-added"),
    ],
)
def test_compile_key_changes_with_every_input(changed: dict[str, object]) -> None:
    assert key(**changed) != key()  # type: ignore[arg-type]


def test_compile_key_changes_with_a_setting_value() -> None:
    assert key(settings={"CFLAGS": "-O2"}) != key(settings={"CFLAGS": "-O3"})
    assert key(settings={"CFLAGS": "-O2"}) != key(settings={"LDFLAGS": "-O2"})


def test_compile_keys_all_distinct_across_runtimes_and_archs() -> None:
    keys = {
        key(target=make_target(runtime, arch))
        for runtime in ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
        for arch in (X86, ARM)
    }
    assert len(keys) == 10


def test_compile_key_is_the_hash_of_its_fields_and_unchanged() -> None:
    """Existing caches stay warm: the key is what it was before the fields were exposed."""
    settings = {"repair": "off", "build-packages": "libpq-devel"}
    arm = make_target("python3.12", ARM)
    fields = compile_key_fields(PIN, arm, image_id=IMAGE_ID, settings=settings)
    assert compile_key(PIN, arm, image_id=IMAGE_ID, settings=settings) == build_key(fields)
    assert key() == "3caa57149e838c079254736979f572705b6a4b72ab5f6fe285d690b19a85b29e"
    assert build_key(fields) == "d093770bc30645e44e1b07ca1889a0a63d7292840d07cef00b7119e9a4a8e7d3"


def test_compile_key_fields_name_every_input() -> None:
    fields = compile_key_fields(
        PIN, make_target(arch=ARM), image_id=IMAGE_ID, settings={"repair": "off"}
    )
    assert fields == {
        "kind": "built-wheel",
        "name": "markupsafe",
        "version": "2.1.5",
        "sdist_sha256": "5" * 64,
        "abi": "cp39",
        "arch": "arm64",
        "platform": "linux/arm64",
        "glibc": "2.26",
        "build_image_id": IMAGE_ID,
        "recipe": "2",
        "setting:repair": "off",
    }


def test_manifest_key_carries_the_fields_only_when_they_hash_to_the_job_key() -> None:
    fields = compile_key_fields(PIN, make_target(), image_id=IMAGE_ID, settings={})
    sdist = Path("/cache/MarkupSafe-2.1.5.tar.gz")
    job = CompileJob(pin=PIN, key=key(), sdist=sdist, key_fields=fields)
    assert manifest_key(job) == {"key": fields}
    stale = dataclasses.replace(job, key=key(image_id="sha256:" + "2" * 64))
    assert manifest_key(stale) == {}  # the image changed since planning: no wrong key
    assert manifest_key(CompileJob(pin=PIN, key=key(), sdist=sdist)) == {}


# --- build_environment ---------------------------------------------------------------------


def test_build_environment_default_epoch() -> None:
    env = build_environment(None)
    assert env["SOURCE_DATE_EPOCH"] == "315532800"  # 1980-01-01, the zip format's first day
    assert env["PIP_CACHE_DIR"] == "/tmp/nativebuild-pip-cache"  # inside the container only
    assert env["PIP_NO_INPUT"] == "1"


def test_build_environment_given_epoch() -> None:
    assert build_environment(1_700_000_000)["SOURCE_DATE_EPOCH"] == "1700000000"
    assert build_environment(0)["SOURCE_DATE_EPOCH"] == "0"


# --- compile_spec and the jobs document ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    in_dir: Path
    out_dir: Path
    jobs: tuple[CompileJob, ...]
    index: IndexSettings


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    sdists = tmp_path / "cache" / "sdists"
    sdists.mkdir(parents=True)
    other = dataclasses.replace(
        PIN, name="pyyaml", version="6.0.1", filename="PyYAML-6.0.1.tar.gz", sha256="7" * 64
    )
    jobs = []
    for pin in (PIN, other):
        sdist = sdists / pin.sha256 / pin.filename
        sdist.parent.mkdir()
        sdist.write_bytes(b"sdist")
        jobs.append(CompileJob(pin=pin, key=key(pin), sdist=sdist))
    bundle, netrc = tmp_path / "ca.pem", tmp_path / "netrc"
    bundle.write_text("cert", encoding="utf-8")
    netrc.write_text("machine m login u password p", encoding="utf-8")
    index = IndexSettings(
        index_url="https://mirror.example/simple",
        extra_index_urls=("https://extra.example/simple",),
        trusted_hosts=("mirror.example",),
        ca_bundle=bundle,
        netrc=netrc,
        proxies=(("HTTPS_PROXY", "http://proxy:3128"),),
    )
    return Layout(
        in_dir=tmp_path / "work" / "in",
        out_dir=tmp_path / "work" / "out",
        jobs=tuple(jobs),
        index=index,
    )


def spec_for(layout: Layout, target: Target, epoch: int | None = 1_700_000_000) -> ContainerSpec:
    return compile_spec(
        layout.jobs,
        target,
        in_dir=layout.in_dir,
        out_dir=layout.out_dir,
        index=layout.index,
        source_date_epoch=epoch,
    )


def test_compile_spec_only_out_is_writable(layout: Layout) -> None:
    """No host directory but the output is writable to a build: not even a pip cache, which a
    hostile build could plant files in for the next one."""
    spec = spec_for(layout, make_target())
    writable = {(m.target, m.source) for m in spec.mounts if not m.read_only}
    assert writable == {("/nativebuild/out", layout.out_dir)}
    targets = [m.target for m in spec.mounts]
    assert len(targets) == len(set(targets))


def test_compile_spec_mounts_inputs_read_only(layout: Layout) -> None:
    spec = spec_for(layout, make_target())
    read_only = {m.target: m.source for m in spec.mounts if m.read_only}
    assert read_only == {
        DRIVER_IN_CONTAINER: DRIVER,
        "/nativebuild/in": layout.in_dir,
        "/nativebuild/sdists/MarkupSafe-2.1.5.tar.gz": layout.jobs[0].sdist,
        "/nativebuild/sdists/PyYAML-6.0.1.tar.gz": layout.jobs[1].sdist,
        CA_BUNDLE_IN_CONTAINER: layout.index.ca_bundle,
        NETRC_IN_CONTAINER: layout.index.netrc,
    }
    assert DRIVER.is_file()
    assert DRIVER_IN_CONTAINER == "/nativebuild/driver.py"


@pytest.mark.parametrize("runtime", ["python3.9", "python3.12", "python3.14"])
@pytest.mark.parametrize(("arch", "platform"), [(X86, "linux/amd64"), (ARM, "linux/arm64")])
def test_compile_spec_image_platform_and_command(
    layout: Layout, runtime: str, arch: Architecture, platform: str
) -> None:
    target = make_target(runtime, arch)
    spec = spec_for(layout, target)
    assert spec.image == target.build_image
    assert spec.platform == platform
    assert spec.command == (
        f"/var/lang/bin/{runtime}",
        DRIVER_IN_CONTAINER,
        "/nativebuild/in/jobs.json",
        "/nativebuild/out/results.json",
    )
    assert spec.entrypoint == ()  # Lambda images' entrypoint would swallow the command


def test_compile_spec_environment(layout: Layout) -> None:
    spec = spec_for(layout, make_target())
    names = [name for name, _ in spec.environment]
    assert names == sorted(names)
    env = dict(spec.environment)
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["PIP_CACHE_DIR"] == "/tmp/nativebuild-pip-cache"
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert env["PIP_EXTRA_INDEX_URL"] == "https://extra.example/simple"
    assert env["PIP_TRUSTED_HOST"] == "mirror.example"
    assert env["PIP_CERT"] == CA_BUNDLE_IN_CONTAINER
    assert env["NETRC"] == NETRC_IN_CONTAINER
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    # Container paths only: nothing from the host file system leaks into the environment.
    assert str(layout.in_dir.parent.parent) not in json.dumps(env)


def test_compile_spec_default_epoch(layout: Layout) -> None:
    env = dict(spec_for(layout, make_target(), epoch=None).environment)
    assert env["SOURCE_DATE_EPOCH"] == "315532800"


def test_compile_spec_without_ca_bundle_or_netrc(layout: Layout) -> None:
    bare = dataclasses.replace(layout, index=IndexSettings())
    spec = spec_for(bare, make_target())
    targets = {m.target for m in spec.mounts}
    assert CA_BUNDLE_IN_CONTAINER not in targets
    assert NETRC_IN_CONTAINER not in targets
    env = dict(spec.environment)
    assert "PIP_CERT" not in env
    assert "NETRC" not in env


def test_compile_spec_describes_the_jobs(layout: Layout) -> None:
    spec = spec_for(layout, make_target())
    assert "markupsafe 2.1.5" in spec.description
    assert "pyyaml 6.0.1" in spec.description


def test_jobs_document(layout: Layout) -> None:
    assert jobs_document(layout.jobs) == [
        {
            "name": "markupsafe",
            "version": "2.1.5",
            "sdist": "/nativebuild/sdists/MarkupSafe-2.1.5.tar.gz",
            "out": "/nativebuild/out/markupsafe",
            "repair": None,
        },
        {
            "name": "pyyaml",
            "version": "6.0.1",
            "sdist": "/nativebuild/sdists/PyYAML-6.0.1.tar.gz",
            "out": "/nativebuild/out/pyyaml",
            "repair": None,
        },
    ]
    json.dumps(jobs_document(layout.jobs))  # the driver reads it as JSON


def test_repair_passes_the_runtime_libraries_and_mounts_the_repair_script(
    layout: Layout,
) -> None:
    assert REPAIR_IN_CONTAINER not in {m.target for m in spec_for(layout, make_target()).mounts}
    provided = ("libc.so.6", "libssl.so.1.1")
    repairing = dataclasses.replace(
        layout, jobs=tuple(dataclasses.replace(j, provided=provided) for j in layout.jobs)
    )
    documents = jobs_document(repairing.jobs)
    assert [d["repair"] for d in documents] == [{"provided": list(provided)}] * 2
    mounts = {m.target: m for m in spec_for(repairing, make_target()).mounts}
    assert mounts[REPAIR_IN_CONTAINER].source == REPAIR
    assert mounts[REPAIR_IN_CONTAINER].read_only
    # The driver imports it by module name from its own directory.
    assert Path(REPAIR_IN_CONTAINER).parent == Path(DRIVER_IN_CONTAINER).parent
    assert Path(REPAIR_IN_CONTAINER).stem == "nativebuild_repair"


def test_jobs_document_paths_are_the_mounted_ones(layout: Layout) -> None:
    spec = spec_for(layout, make_target())
    mounted = {m.target for m in spec.mounts}
    writable = {m.target for m in spec.mounts if not m.read_only}
    for job in jobs_document(layout.jobs):
        assert job["sdist"] in mounted
        assert any(job["out"].startswith(w + "/") for w in writable)


# --- check_built_wheel ---------------------------------------------------------------------

JOB = CompileJob(pin=PIN, key="k", sdist=Path("/cache/MarkupSafe-2.1.5.tar.gz"))


@pytest.mark.parametrize(
    ("runtime", "arch", "filename"),
    [
        ("python3.9", X86, "MarkupSafe-2.1.5-cp39-cp39-linux_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py3-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py2.py3-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-abi3-linux_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39-manylinux_2_17_x86_64.whl"),
        ("python3.9", ARM, "MarkupSafe-2.1.5-cp39-cp39-linux_aarch64.whl"),
        ("python3.12", ARM, "MarkupSafe-2.1.5-cp312-cp312-linux_aarch64.whl"),
        ("python3.12", X86, "markupsafe-2.1.5-py3-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py39-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py3-none-linux_x86_64.whl"),
        ("python3.10", X86, "markupsafe-2.1.5-cp39-abi3-linux_x86_64.whl"),
        ("python3.12", ARM, "markupsafe-2.1.5-cp37-abi3-manylinux2014_aarch64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39-manylinux1_x86_64.whl"),
        # a compressed tag set fits when any one of its tags does
        ("python3.9", X86, "markupsafe-2.1.5-cp38.cp39-cp38.cp39-linux_x86_64.whl"),
    ],
)
def test_check_built_wheel_accepts(runtime: str, arch: Architecture, filename: str) -> None:
    check_built_wheel(JOB, filename, make_target(runtime, arch))


@pytest.mark.parametrize(
    ("runtime", "arch", "filename"),
    [
        ("python3.9", X86, "MarkupSafe-2.1.5-cp310-cp310-linux_x86_64.whl"),
        ("python3.9", X86, "MarkupSafe-2.1.5-cp39-cp39-linux_aarch64.whl"),
        ("python3.9", X86, "MarkupSafe-2.1.5-cp39-cp39-manylinux_2_17_aarch64.whl"),
        ("python3.9", ARM, "MarkupSafe-2.1.5-cp39-cp39-linux_x86_64.whl"),
        ("python3.9", X86, "MarkupSafe-2.1.5-pp39-pypy39_pp73-linux_x86_64.whl"),
        ("python3.12", X86, "MarkupSafe-2.1.5-cp39-cp39-linux_x86_64.whl"),
        # the platform must be Linux on the target's machine, whatever its suffix says
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39-macosx_10_9_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-abi3-macosx_11_0_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39-win_amd64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39-musllinux_1_1_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py3-none-macosx_10_9_x86_64.whl"),
        # abi3 only from the target's Python or older, and only from CPython
        ("python3.9", X86, "markupsafe-2.1.5-cp310-abi3-linux_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-pp39-abi3-linux_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-cp27-abi3-linux_x86_64.whl"),
        # another ABI of the right interpreter (a debug build), or pure Python with an ABI
        ("python3.9", X86, "markupsafe-2.1.5-cp39-cp39d-linux_x86_64.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py3-cp39-linux_x86_64.whl"),
        # pure Python for another Python
        ("python3.9", X86, "markupsafe-2.1.5-py2-none-any.whl"),
        ("python3.9", X86, "markupsafe-2.1.5-py310-none-any.whl"),
    ],
)
def test_check_built_wheel_refuses(runtime: str, arch: Architecture, filename: str) -> None:
    target = make_target(runtime, arch)
    with pytest.raises(CompileError) as info:
        check_built_wheel(JOB, filename, target)
    message = str(info.value)
    assert filename in message
    assert target.runtime.abi in message
    assert target.arch.machine in message
    assert target.build_image in message
    assert info.value.hint is not None
    assert "--build-image" in info.value.hint


@pytest.mark.parametrize("filename", ["markupsafe.whl", "markupsafe-2.1.5.tar.gz", "x-1-y.whl"])
def test_check_built_wheel_refuses_invalid_names(filename: str) -> None:
    with pytest.raises(CompileError, match="not a valid wheel name"):
        check_built_wheel(JOB, filename, make_target())


# --- the in-container driver, with the host's Python ---------------------------------------


@pytest.fixture(scope="module")
def driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nativebuild_driver_under_test", DRIVER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


SDIST_LAYOUT: list[tarfile.TarInfo | tuple[str, bytes]] = [
    ("markupsafe-2.1.5/PKG-INFO", b"Metadata-Version: 2.1\nName: MarkupSafe\nVersion: 2.1.5\n"),
    ("markupsafe-2.1.5/setup.py", b"from setuptools import setup\nsetup()\n"),
    ("markupsafe-2.1.5/src/markupsafe/__init__.py", b""),
]


def test_driver_unpack_returns_the_project_directory(driver: ModuleType, tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "markupsafe-2.1.5.tar.gz", SDIST_LAYOUT)
    dest = tmp_path / "build" / "markupsafe"
    source = driver.unpack(str(sdist), str(dest))
    assert Path(source) == dest / "markupsafe-2.1.5"
    assert (Path(source) / "setup.py").read_bytes() == b"from setuptools import setup\nsetup()\n"
    assert (Path(source) / "src" / "markupsafe" / "__init__.py").is_file()


def test_driver_unpack_zip_sdist(driver: ModuleType, tmp_path: Path) -> None:
    sdist = tmp_path / "legacy-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as archive:
        archive.writestr("legacy-1.0/setup.py", "setup()\n")
        archive.writestr("legacy-1.0/PKG-INFO", "Name: legacy\n")
    source = driver.unpack(str(sdist), str(tmp_path / "dest"))
    assert Path(source) == tmp_path / "dest" / "legacy-1.0"
    assert (Path(source) / "setup.py").is_file()


def test_driver_unpack_flat_layout_returns_dest(driver: ModuleType, tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "flat-1.0.tar.gz", [("setup.py", b""), ("PKG-INFO", b"")])
    dest = tmp_path / "dest"
    assert Path(driver.unpack(str(sdist), str(dest))) == dest


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([("../evil", b"x")], id="dotdot"),
        pytest.param([("pkg-1.0/setup.py", b""), ("pkg-1.0/../../evil", b"x")], id="nested-dotdot"),
        pytest.param([("/tmp/nativebuild-test-evil", b"x")], id="absolute"),
        pytest.param([_link("pkg-1.0/link", "../../outside")], id="symlink-out"),
        pytest.param([_link("pkg-1.0/link", "/etc/passwd")], id="symlink-absolute"),
        pytest.param([_link("pkg-1.0/hard", "../outside", tarfile.LNKTYPE)], id="hardlink-out"),
        # A hard link's target is relative to the archive root, not to the link's directory.
        pytest.param(
            [_link("pkg-1.0/a/b/hard", "../outside", tarfile.LNKTYPE)], id="nested-hardlink-out"
        ),
    ],
)
def test_driver_unpack_refuses_escaping_members(
    driver: ModuleType, tmp_path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]
) -> None:
    sdist = _tar(tmp_path / "evil-1.0.tar.gz", members)
    build = tmp_path / "sandbox" / "build"
    build.mkdir(parents=True)
    # Hard links to an existing file outside are made without reading the archive.
    (build / "outside").write_text("precious", encoding="utf-8")
    dest = build / "pkg"
    with pytest.raises(ValueError, match="unsafe path in sdist"):
        driver.unpack(str(sdist), str(dest))
    assert sorted(p.name for p in build.iterdir()) == ["outside", "pkg"]
    assert list(dest.iterdir()) == []  # refused before anything was written


def test_driver_unpack_refuses_a_device(driver: ModuleType, tmp_path: Path) -> None:
    device = tarfile.TarInfo("pkg-1.0/dev")
    device.type = tarfile.CHRTYPE
    device.devmajor, device.devminor = 1, 3
    sdist = _tar(tmp_path / "dev-1.0.tar.gz", [device])
    with pytest.raises(ValueError, match="device file in sdist"):
        driver.unpack(str(sdist), str(tmp_path / "dest"))


def test_driver_unpack_zip_refuses_dotdot(driver: ModuleType, tmp_path: Path) -> None:
    sdist = tmp_path / "evil-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as archive:
        archive.writestr("../evil", "x")
    with pytest.raises(ValueError, match="unsafe path in sdist"):
        driver.unpack(str(sdist), str(tmp_path / "dest"))


def test_driver_unpack_cannot_write_through_its_own_symlink(
    driver: ModuleType, tmp_path: Path
) -> None:
    """``link -> .`` is harmless alone; ``link/../evil`` then names the parent of dest."""
    sdist = _tar(tmp_path / "evil-1.0.tar.gz", [_link("link", "."), ("link/../evil", b"x")])
    dest = tmp_path / "sandbox" / "dest"
    with pytest.raises((ValueError, tarfile.TarError)):
        driver.unpack(str(sdist), str(dest))
    assert not (tmp_path / "sandbox" / "evil").exists()


def test_driver_keeps_internal_symlinks(driver: ModuleType, tmp_path: Path) -> None:
    sdist = _tar(
        tmp_path / "pkg-1.0.tar.gz",
        [("pkg-1.0/data/real.txt", b"data"), _link("pkg-1.0/docs/alias.txt", "../data/real.txt")],
    )
    source = Path(driver.unpack(str(sdist), str(tmp_path / "dest")))
    assert (source / "docs" / "alias.txt").read_bytes() == b"data"
