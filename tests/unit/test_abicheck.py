"""nativebuild.abi.check: the loader's rules applied to an archive's binaries, and the runtime
facts they are checked against (data for Lambda's images, or a probe's answer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nativebuild.abi.check import (
    Finding,
    FindingKind,
    Severity,
    abi_error,
    check_archive_plan,
    check_mounts,
    missing_libraries,
)
from nativebuild.abi.elf import Binary, BinaryKind, ElfFacts, VersionNeed
from nativebuild.abi.runtime_facts import (
    RuntimeFacts,
    facts_for_target,
    facts_from_probe,
    known_facts,
)
from nativebuild.abi.scan import Mounted
from nativebuild.archive.plan import plan_function_archive
from nativebuild.config.settings import Settings
from nativebuild.errors import AbiError, ConfigError
from nativebuild.reporting import NullReporter
from nativebuild.targets import Architecture, GlibcVersion, Target
from tests.elffixtures import MACHO_64, STATX_C, libfoo, pe_file, shared_library, uses_foo
from tests.wheelfactory import make_wheel

LD_LIBRARY_PATH = (
    "/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib",
    "/var/task", "/var/task/lib", "/opt/lib",
)  # fmt: skip
MANYLINUX_WHEEL = "pkg-1.0-cp39-cp39-manylinux2014_x86_64.whl"
COMPILED_WHEEL = "pkg-1.0-cp39-cp39-linux_x86_64.whl"


def target(runtime: str = "python3.9", arch: Architecture = Architecture.X86_64) -> Target:
    (found,) = Settings(runtime=runtime, archs=(arch,)).targets()
    return found


def facts(
    *,
    libraries: Sequence[str] = ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1"),
    versions: Mapping[str, frozenset[str]] | None = None,
    glibc: str = "2.26",
    machine: str = "x86_64",
) -> RuntimeFacts:
    """An Amazon Linux 2-like runtime: glibc 2.26, gcc 7."""
    return RuntimeFacts(
        description="test runtime",
        source="probe" if versions else "data",
        machine=machine,
        glibc=GlibcVersion.parse(glibc),
        ceilings={"GLIBC": (2, 26), "GLIBCXX": (3, 4, 24), "CXXABI": (1, 3, 11), "GCC": (7, 0, 0)},
        libraries=dict.fromkeys(libraries, ("/lib64", "/usr/lib64")),
        versions=versions or {},
        ld_library_path=LD_LIBRARY_PATH,
    )


def elf(
    *,
    needed: Sequence[str] = ("libc.so.6",),
    needs: Sequence[tuple[str, str]] = (),
    machine: str = "x86_64",
    rpath: Sequence[str] = (),
    runpath: Sequence[str] = (),
    defines: Sequence[str] = (),
    weak: bool = False,
    file_type: str = "ET_DYN",
) -> ElfFacts:
    return ElfFacts(
        machine=machine,
        elf_class=64,
        file_type=file_type,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        version_needs=tuple(
            VersionNeed(library=lib, version=v, weak=weak, symbols=("sym",)) for lib, v in needs
        ),
        version_definitions=tuple(defines),
    )


def binary(
    path: str,
    facts_: ElfFacts | None = None,
    *,
    wheel: str | None = MANYLINUX_WHEEL,
    kind: BinaryKind = BinaryKind.ELF,
    error: str | None = None,
) -> Binary:
    package = "pkg 1.0" if wheel else None
    return Binary(path=path, kind=kind, package=package, wheel=wheel, elf=facts_, error=error)


def archive(*binaries: Binary, other_files: Sequence[str] = (), root: str = "/var/task") -> Mounted:
    files = frozenset([b.path for b in binaries] + list(other_files))
    return Mounted(root=root, files=files, binaries=binaries)


def check(
    *mounts: Mounted, runtime: RuntimeFacts | None = None, tgt: Target | None = None
) -> list[Finding]:
    return check_mounts(list(mounts), tgt or target(), runtime or facts())


def kinds(findings: Sequence[Finding]) -> list[tuple[FindingKind, Severity, str]]:
    return [(f.kind, f.severity, f.path) for f in findings]


# --- symbol versions ---------------------------------------------------------------------------


def test_a_glibc_version_above_the_ceiling_is_an_error_naming_everything() -> None:
    ext = binary(
        "pkg/_ext.so", elf(needs=[("libc.so.6", "GLIBC_2.28"), ("libc.so.6", "GLIBC_2.2.5")])
    )
    (finding,) = check(archive(ext))
    assert (finding.kind, finding.severity) == (FindingKind.SYMBOL_VERSION, Severity.ERROR)
    assert (finding.path, finding.package, finding.library) == (
        "pkg/_ext.so",
        "pkg 1.0",
        "libc.so.6",
    )
    assert "GLIBC_2.28 (sym)" in finding.needs
    assert "GLIBC_2.2.5" not in finding.needs
    assert "GLIBC_2.26" in finding.has
    assert "--no-binary pkg" in finding.fix
    assert "pin another version" in finding.fix


def test_a_compiled_wheel_above_the_ceiling_points_at_the_build_image() -> None:
    ext = binary("pkg/_ext.so", elf(needs=[("libc.so.6", "GLIBC_2.28")]), wheel=COMPILED_WHEEL)
    (finding,) = check(archive(ext))
    assert "--build-image" in finding.fix


@pytest.mark.parametrize(
    ("library", "version"),
    [
        ("libc.so.6", "GLIBC_2.26"),  # at the ceiling
        ("libstdc++.so.6", "GLIBCXX_3.4.24"),
        ("libstdc++.so.6", "CXXABI_1.3.11"),
        ("libgcc_s.so.1", "GCC_7.0.0"),
        ("libc.so.6", "GLIBC_PRIVATE"),  # unnumbered: data cannot judge it
    ],
)
def test_versions_within_the_ceilings_pass(library: str, version: str) -> None:
    ext = binary("x.so", elf(needed=[library], needs=[(library, version)]))
    assert check(archive(ext)) == []


@pytest.mark.parametrize(
    ("library", "version"),
    [
        ("libstdc++.so.6", "GLIBCXX_3.4.26"),  # aws-lambda-base-images#87
        ("libstdc++.so.6", "CXXABI_1.3.12"),
        ("libgcc_s.so.1", "GCC_12.0.0"),
        ("libc.so.6", "GLIBC_ABI_DT_RELR"),  # glibc 2.36
    ],
)
def test_versions_above_the_ceilings_fail(library: str, version: str) -> None:
    ext = binary("x.so", elf(needed=[library], needs=[(library, version)]))
    assert kinds(check(archive(ext))) == [(FindingKind.SYMBOL_VERSION, Severity.ERROR, "x.so")]


def test_weak_version_needs_are_ignored() -> None:
    ext = binary("x.so", elf(needs=[("libc.so.6", "GLIBC_2.30")], weak=True))
    assert check(archive(ext)) == []


def test_a_probed_runtime_checks_each_library_exactly() -> None:
    # glibc 2.26 defines GLIBC_2.26 in libc, but libm got no GLIBC_2.26 version: the loader
    # checks the file the version is needed from.
    runtime = facts(
        versions={
            "libc.so.6": frozenset({"GLIBC_2.2.5", "GLIBC_2.26"}),
            "libm.so.6": frozenset({"GLIBC_2.2.5", "GLIBC_2.23"}),
        }
    )
    ok = binary("ok.so", elf(needed=["libc.so.6"], needs=[("libc.so.6", "GLIBC_2.26")]))
    bad = binary("bad.so", elf(needed=["libm.so.6"], needs=[("libm.so.6", "GLIBC_2.26")]))
    (finding,) = check(archive(ok, bad), runtime=runtime)
    assert (finding.path, finding.library) == ("bad.so", "libm.so.6")
    assert "lacks it" in finding.has


# --- needed libraries --------------------------------------------------------------------------


def test_a_library_found_nowhere_is_missing_and_listed_for_repair() -> None:
    ext = binary("psycopg2/_psycopg.so", elf(needed=["libc.so.6", "libpq.so.5", "libssl.so.1.1"]))
    runtime = facts(libraries=["libc.so.6", "libssl.so.10"])
    findings = check(archive(ext), runtime=runtime)
    assert [(f.kind, f.library) for f in findings] == [
        (FindingKind.MISSING_LIBRARY, "libpq.so.5"),
        (FindingKind.MISSING_LIBRARY, "libssl.so.1.1"),
    ]
    assert "psycopg2-binary" in findings[0].fix  # the data file's hint
    assert "the runtime has only libssl.so.10" in findings[1].has
    assert missing_libraries(findings) == {"psycopg2/_psycopg.so": ("libpq.so.5", "libssl.so.1.1")}


def test_a_library_shipped_beside_the_extension_without_a_runpath_is_not_found() -> None:
    # The loader does not look in the requesting file's directory unless told to.
    ext = binary("pkg/_ext.so", elf(needed=["libfoo.so.1"]))
    lib = binary("pkg/libfoo.so.1", elf(needed=[]))
    assert kinds(check(archive(ext, lib))) == [
        (FindingKind.MISSING_LIBRARY, Severity.ERROR, "pkg/_ext.so")
    ]


@pytest.mark.parametrize(
    ("ext_elf", "lib_path"),
    [
        (elf(needed=["libfoo.so.1"], runpath=["$ORIGIN/../pkg.libs"]), "pkg.libs/libfoo.so.1"),
        (elf(needed=["libfoo.so.1"], runpath=["${ORIGIN}"]), "pkg/libfoo.so.1"),
        (elf(needed=["libfoo.so.1"], rpath=["$ORIGIN/../vendor"]), "vendor/libfoo.so.1"),
        (elf(needed=["libfoo.so.1"]), "lib/libfoo.so.1"),  # /var/task/lib is on LD_LIBRARY_PATH
        (elf(needed=["libfoo.so.1"]), "libfoo.so.1"),  # so is /var/task
    ],
)
def test_shipped_libraries_are_found_as_the_loader_finds_them(
    ext_elf: ElfFacts, lib_path: str
) -> None:
    ext = binary("pkg/_ext.so", ext_elf)
    lib = binary(lib_path, elf(needed=[]))
    assert check(archive(ext, lib)) == []


def test_rpath_is_inherited_down_the_chain_of_loaders_and_runpath_is_not() -> None:
    # numpy: the extension's DT_RPATH finds OpenBLAS in numpy.libs, and also the gfortran that
    # OpenBLAS (no RPATH of its own) needs, and the quadmath that gfortran needs.
    libs = [
        binary("numpy.libs/libopenblas.so", elf(needed=["libgfortran-1.so.5"])),
        binary("numpy.libs/libgfortran-1.so.5", elf(needed=["libquadmath-2.so.0"])),
        binary("numpy.libs/libquadmath-2.so.0", elf(needed=[])),
    ]
    rpath = binary(
        "numpy/core/_umath.so", elf(needed=["libopenblas.so"], rpath=["$ORIGIN/../../numpy.libs"])
    )
    assert check(archive(rpath, *libs)) == []
    runpath = binary(
        "numpy/core/_umath.so", elf(needed=["libopenblas.so"], runpath=["$ORIGIN/../../numpy.libs"])
    )
    assert [(f.path, f.library) for f in check(archive(runpath, *libs))] == [
        ("numpy.libs/libgfortran-1.so.5", "libquadmath-2.so.0"),
        ("numpy.libs/libopenblas.so", "libgfortran-1.so.5"),
    ]


def test_runpath_disables_rpath() -> None:
    ext = binary(
        "pkg/_ext.so", elf(needed=["libfoo.so.1"], rpath=["$ORIGIN"], runpath=["/nowhere"])
    )
    lib = binary("pkg/libfoo.so.1", elf(needed=[]))
    assert [f.kind for f in check(archive(ext, lib))] == [FindingKind.MISSING_LIBRARY]


def test_a_layer_lib_directory_provides_libraries() -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libfoo.so.1"]))
    layer = archive(binary("lib/libfoo.so.1", elf(needed=[])), root="/opt")
    assert check(archive(ext), layer) == []
    assert [f.kind for f in check(archive(ext))] == [FindingKind.MISSING_LIBRARY]


def test_a_shipped_library_must_define_the_versions_needed_from_it() -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libfoo.so.1"], needs=[("libfoo.so.1", "FOO_1.1")]))
    versioned = binary("lib/libfoo.so.1", elf(needed=[], defines=["FOO_1.0"]))
    (finding,) = check(archive(ext, versioned))
    assert (finding.kind, finding.library) == (FindingKind.SYMBOL_VERSION, "libfoo.so.1")
    assert "lib/libfoo.so.1 defines only FOO_1.0" in finding.has
    unversioned = binary("lib/libfoo.so.1", elf(needed=[]))  # ld.so only warns
    assert check(archive(ext, unversioned)) == []


def test_the_runtimes_library_shadows_a_shipped_copy_found_via_ld_library_path() -> None:
    # /lib64 comes before /var/task/lib on LD_LIBRARY_PATH: shipping a newer libstdc++ in lib/
    # does not help, but a DT_RPATH (searched first) does.
    needs = [("libstdc++.so.6", "GLIBCXX_3.4.30")]
    newer = binary("lib/libstdc++.so.6", elf(needed=[], defines=["GLIBCXX_3.4.30"]))
    plain = binary("pkg/_ext.so", elf(needed=["libstdc++.so.6"], needs=needs))
    (finding,) = check(archive(plain, newer))
    assert finding.kind is FindingKind.SYMBOL_VERSION
    pinned = binary(
        "pkg/_ext.so", elf(needed=["libstdc++.so.6"], needs=needs, rpath=["$ORIGIN/../lib"])
    )
    assert check(archive(pinned, newer)) == []


# --- machines and formats ----------------------------------------------------------------------


def test_an_x86_64_library_in_an_arm64_archive_is_an_error() -> None:
    ext = binary("pkg/_ext.so", elf(machine="x86_64"))
    (finding,) = check(archive(ext), tgt=target(arch=Architecture.ARM64))
    assert (finding.kind, finding.severity) == (FindingKind.WRONG_MACHINE, Severity.ERROR)
    assert "x86_64" in finding.needs
    assert "aarch64" in finding.has
    assert "tagged for aarch64 but holds x86_64 code" in finding.fix


def test_a_foreign_object_file_is_only_a_warning() -> None:
    obj = binary("pkg/x.o", elf(machine="aarch64", file_type="ET_REL"), wheel=None)
    (finding,) = check(archive(obj))
    assert (finding.kind, finding.severity) == (FindingKind.WRONG_MACHINE, Severity.WARNING)
    assert "your source" in finding.describe()


def test_a_mach_o_extension_is_an_error_and_a_windows_launcher_a_warning() -> None:
    mac = binary("pkg/_ext.cpython-39-darwin.so", kind=BinaryKind.MACHO)
    exe = binary("setuptools/cli-64.exe", kind=BinaryKind.PE)
    assert kinds(check(archive(mac, exe))) == [
        (FindingKind.FOREIGN_BINARY, Severity.ERROR, "pkg/_ext.cpython-39-darwin.so"),
        (FindingKind.FOREIGN_BINARY, Severity.WARNING, "setuptools/cli-64.exe"),
    ]


def test_unreadable_elf_files_warn_and_do_not_stop_the_build() -> None:
    broken = binary("pkg/_x.so", None, error="not a readable ELF file (ELFError)")
    findings = check(archive(broken))
    assert kinds(findings) == [(FindingKind.UNREADABLE, Severity.WARNING, "pkg/_x.so")]
    assert abi_error(findings, target()) is None


def test_abi_error_lists_every_failing_file() -> None:
    findings = check(
        archive(
            binary("a.so", elf(needs=[("libc.so.6", "GLIBC_2.28")])),
            binary("b.so", elf(needed=["libGL.so.1"])),
        )
    )
    error = abi_error(findings, target())
    assert isinstance(error, AbiError)
    assert error.exit_code == 14
    assert "2 binary file(s)" in str(error)
    assert "a.so (pkg 1.0) needs GLIBC_2.28" in str(error)
    assert "b.so (pkg 1.0) needs the shared library libGL.so.1" in str(error)
    assert "opencv-python-headless" in str(error)


# --- on real files, through an archive plan ----------------------------------------------------


def test_a_manylinux2014_wheel_whose_library_needs_glibc_2_28_is_caught(tmp_path: Path) -> None:
    statx = shared_library(tmp_path / "build", "_bcrypt.so", STATX_C).read_bytes()
    wheel = make_wheel(
        tmp_path / "wheels", "bcrypt", "4.0.1",
        {"bcrypt/__init__.py": "", "bcrypt/_bcrypt.abi3.so": statx},
        tag="cp36-abi3-manylinux2014_x86_64",
    )  # fmt: skip
    plan = plan_function_archive([wheel], None, python="3.9")
    al2 = target("python3.9")
    (finding,) = check_archive_plan(plan, al2, known_facts(al2))
    assert finding.describe().startswith(
        "bcrypt/_bcrypt.abi3.so (bcrypt 4.0.1) needs GLIBC_2.28 (statx) from libc.so.6"
    )
    al2023 = target("python3.12")
    plan312 = plan_function_archive([wheel], None, python="3.12")
    assert check_archive_plan(plan312, al2023, known_facts(al2023)) == []


def test_real_libraries_resolve_through_runpath_and_fail_without_it(tmp_path: Path) -> None:
    foo = libfoo(tmp_path / "build")
    runpath = ["-Wl,-rpath,$ORIGIN/../native.libs", "-Wl,--enable-new-dtags"]
    good = uses_foo(tmp_path / "build", "good.so", foo, link_args=runpath).read_bytes()
    bad = uses_foo(tmp_path / "build", "bad.so", foo).read_bytes()
    wheel = make_wheel(
        tmp_path / "wheels", "native", "1.0",
        {"native/good.so": good, "native/bad.so": bad, "native.libs/libfoo.so.1": foo.read_bytes()},
        tag="cp39-cp39-linux_x86_64",
    )  # fmt: skip
    tgt = target("python3.9")
    findings = check_archive_plan(
        plan_function_archive([wheel], None, python="3.9"), tgt, known_facts(tgt)
    )
    assert missing_libraries(findings) == {"native/bad.so": ("libfoo.so.1",)}
    assert "vendor it into the archive's lib/" in findings[0].fix


def test_a_real_x86_64_library_in_an_arm64_archive_and_a_mach_o_file(tmp_path: Path) -> None:
    plain = shared_library(tmp_path / "build", "libplain.so", "int f(void){return 0;}\n")
    wheel = make_wheel(
        tmp_path / "wheels", "mixed", "1.0",
        {"mixed/_x.so": plain.read_bytes(), "mixed/_mac.so": MACHO_64, "mixed/w.exe": pe_file()},
        tag="cp39-cp39-manylinux2014_aarch64",
    )  # fmt: skip
    arm = target("python3.9", Architecture.ARM64)
    findings = check_archive_plan(
        plan_function_archive([wheel], None, python="3.9"), arm, known_facts(arm)
    )
    assert kinds(findings) == [
        (FindingKind.FOREIGN_BINARY, Severity.ERROR, "mixed/_mac.so"),
        (FindingKind.WRONG_MACHINE, Severity.ERROR, "mixed/_x.so"),
        (FindingKind.FOREIGN_BINARY, Severity.WARNING, "mixed/w.exe"),
    ]


# --- runtime facts -----------------------------------------------------------------------------


def test_known_facts_for_amazon_linux_2() -> None:
    al2 = known_facts(target("python3.9"))
    assert al2.source == "data"
    assert al2.glibc == GlibcVersion(major=2, minor=26)
    assert dict(al2.ceilings) == {
        "GLIBC": (2, 26), "GLIBCXX": (3, 4, 24), "CXXABI": (1, 3, 11), "GCC": (7, 0, 0)
    }  # fmt: skip
    assert al2.libraries["libpython3.9.so.1.0"] == ("/var/lang/lib",)
    assert "ld-linux-x86-64.so.2" in al2.libraries
    assert "libGL.so.1" not in al2.libraries  # manylinux allows it; Lambda lacks it
    assert al2.ld_library_path[0] == "/var/lang/lib"


def test_known_facts_for_amazon_linux_2023_on_arm64() -> None:
    al2023 = known_facts(target("python3.12", Architecture.ARM64))
    assert al2023.machine == "aarch64"
    assert al2023.ceilings["GLIBC"] == (2, 34)
    assert al2023.ceilings["GLIBCXX"] == (3, 4, 29)
    assert al2023.libraries["libssl.so.3"][0] == "/var/lang/lib"
    assert "ld-linux-aarch64.so.1" in al2023.libraries
    assert "ld-linux-x86-64.so.2" not in al2023.libraries


def test_facts_from_a_probe_take_ceilings_from_the_defined_versions() -> None:
    document = {
        "machine": "x86_64", "glibc": "2.31", "os": "Debian GNU/Linux 11 (bullseye)",
        "ld_library_path": list(LD_LIBRARY_PATH),
        "libraries": {"libc.so.6": ["/lib/x86_64-linux-gnu"], "libstdc++.so.6": ["/usr/lib"]},
        "versions": {
            "libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.30", "GLIBC_2.9", "GLIBC_PRIVATE"],
            "libstdc++.so.6": ["GLIBCXX_3.4", "GLIBCXX_3.4.28", "GLIBCXX_3.4.9", "CXXABI_1.3.12"],
        },
    }  # fmt: skip
    probed = facts_from_probe(document, image="img:tag")
    assert probed.glibc == GlibcVersion(major=2, minor=31)
    assert dict(probed.ceilings) == {"GLIBC": (2, 30), "GLIBCXX": (3, 4, 28), "CXXABI": (1, 3, 12)}
    assert "img:tag" in probed.description
    assert "glibc 2.31" in probed.description
    assert RuntimeFacts.from_json(probed.to_json()) == probed


def test_a_glibc_setting_overrides_the_data_ceiling() -> None:
    (custom,) = Settings(runtime="python3.12", glibc=GlibcVersion(major=2, minor=28)).targets()
    assert known_facts(custom).ceilings["GLIBC"] == (2, 28)
    ext = binary("x.so", elf(needs=[("libc.so.6", "GLIBC_2.29")]))
    (finding,) = check(archive(ext), runtime=known_facts(custom), tgt=custom)
    assert "GLIBC_2.28" in finding.has


def test_the_default_images_use_data_and_custom_images_need_a_probe() -> None:
    tgt = target("python3.12")
    assert facts_for_target(tgt, runner=None, cache=None, reporter=NullReporter()).source == "data"
    (custom,) = Settings(runtime="python3.12", runtime_image="my/runtime:{arch}").targets()
    with pytest.raises(ConfigError, match="Probing my/runtime:x86_64"):
        facts_for_target(custom, runner=None, cache=None, reporter=NullReporter())
    forced = facts_for_target(custom, runner=None, cache=None, reporter=NullReporter(), probe=False)
    assert forced.source == "data"


# --- every field of a finding (the report and --json show them all) ----------------------------


def test_an_unreadable_binary_is_a_warning_that_says_what_it_is() -> None:
    broken = binary("pkg/_ext.so", None, error="a truncated ELF header")
    nameless = binary("pkg/_other.so", None)
    assert check(archive(broken, nameless, root="/opt")) == [
        Finding(
            kind=FindingKind.UNREADABLE, severity=Severity.WARNING, path="pkg/_ext.so",
            root="/opt", package="pkg 1.0", needs="to be a valid ELF file",
            has="it is a truncated ELF header",
            fix="If it is meant to load, rebuild the package that ships it.",
        ),
        Finding(
            kind=FindingKind.UNREADABLE, severity=Severity.WARNING, path="pkg/_other.so",
            root="/opt", package="pkg 1.0", needs="to be a valid ELF file",
            has="it is unreadable",
            fix="If it is meant to load, rebuild the package that ships it.",
        ),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "system"), [(BinaryKind.MACHO, "macOS"), (BinaryKind.PE, "Windows")]
)
def test_a_foreign_launcher_is_a_warning_and_a_foreign_library_an_error(
    kind: BinaryKind, system: str
) -> None:
    launcher = binary("bin/tool.exe", None, kind=kind)
    library = binary("pkg/lib.so.1", None, kind=kind)
    in_a_dir = binary("pkg/x.so.d/data.bin", None, kind=kind)  # ".so." in a directory name only
    found = {f.path: f for f in check(archive(launcher, library, in_a_dir))}
    assert found["bin/tool.exe"] == Finding(
        kind=FindingKind.FOREIGN_BINARY, severity=Severity.WARNING, path="bin/tool.exe",
        root="/var/task", package="pkg 1.0", needs=f"{system} to run ({kind} file)",
        has="Lambda runs Linux", fix="Nothing loads it on Linux; it only takes space.",
    )  # fmt: skip
    assert found["pkg/x.so.d/data.bin"].severity is Severity.WARNING
    error = found["pkg/lib.so.1"]
    assert (error.severity, error.needs, error.has) == (
        Severity.ERROR,
        f"{system} to load ({kind} file)",
        'Lambda loads only Linux ELF files ("invalid ELF header")',
    )
    assert error.fix  # the package's own advice: tested with foreign_fix


def test_a_missing_library_names_where_it_looked_and_what_the_runtime_has() -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libffi.so.6"], rpath=["$ORIGIN/lib"]))
    runtime = facts(libraries=("libc.so.6", "libffi.so.7", "libffi.so.8.1", "libffix.so.1"))
    (finding,) = check(archive(ext), runtime=runtime)
    assert finding.library == "libffi.so.6"
    assert finding.needs == "the shared library libffi.so.6"
    assert finding.has == (
        "neither the archive nor the runtime has it (searched /var/task/pkg/lib, "
        + ", ".join(LD_LIBRARY_PATH)
        + ", then the library cache of test runtime); the runtime has only libffi.so.7, "
        "libffi.so.8.1"
    )
    (alone,) = check(archive(ext), runtime=facts(libraries=("libc.so.6",)))
    assert alone.has.endswith("then the library cache of test runtime)")


@pytest.mark.parametrize(
    "entry",
    [
        "$ORIGIN/../libs", "${ORIGIN}/../libs", "/var/task/$LIB/../libs", "/var/task/${LIB}/../libs",
        "/var/task/x/$PLATFORM/../../libs", "/var/task/x/${PLATFORM}/../../libs", "libs",
    ],
)  # fmt: skip
def test_rpath_tokens_and_relative_entries_resolve_as_the_loader_does(entry: str) -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libdep.so.1"], rpath=[entry]))
    dep = binary("libs/libdep.so.1", elf(), wheel=MANYLINUX_WHEEL)
    assert check(archive(ext, dep)) == []


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("/var/task/${LIB}", "lib64"), ("/var/task/$LIB", "lib64"),
        ("/var/task/${PLATFORM}", "x86_64"), ("/var/task/$PLATFORM", "x86_64"),
    ],
)  # fmt: skip
def test_rpath_tokens_expand_to_lambdas_values(entry: str, where: str) -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libdep.so.1"], rpath=[entry]))
    dep = binary(f"{where}/libdep.so.1", elf())
    assert check(archive(ext, dep)) == []
    elsewhere = binary("other/libdep.so.1", elf())
    (finding,) = check(archive(ext, elsewhere))
    assert f"searched /var/task/{where}, " in finding.has


def test_a_need_with_a_slash_is_a_path_from_the_working_directory() -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "vendor/libdep.so.1"]))
    assert check(archive(ext, binary("vendor/libdep.so.1", elf()))) == []
    (finding,) = check(archive(ext, binary("pkg/vendor/libdep.so.1", elf())))
    assert finding.library == "vendor/libdep.so.1"


def test_a_symbol_version_finding_lists_every_unmet_version_and_the_ceiling() -> None:
    ext = binary(
        "pkg/_ext.so",
        elf(
            needs=[
                ("libc.so.6", "GLIBC_2.28"),
                ("libc.so.6", "GLIBC_2.29"),
                ("libc.so.6", "GLIBC_2.2.5"),
            ]
        ),
    )
    (finding,) = check(archive(ext))
    assert finding.needs == "GLIBC_2.28 (sym), GLIBC_2.29 (sym) from libc.so.6"
    assert finding.has == "test runtime goes up to GLIBC_2.26"


def test_a_32_bit_binary_says_so() -> None:
    (finding,) = check(archive(binary("pkg/_w.so", dataclasses.replace(elf(), elf_class=32))))
    assert (finding.kind, finding.needs, finding.has) == (
        FindingKind.WRONG_MACHINE, "a x86_64 (32-bit) machine", "the target is x86_64 (64-bit)"
    )  # fmt: skip
    (x64,) = check(archive(binary("pkg/_a.so", elf(machine="aarch64"))))
    assert x64.needs == "a aarch64 machine"


def test_errors_come_before_warnings_whatever_the_paths() -> None:
    launcher = binary("a/tool.exe", None, kind=BinaryKind.PE)  # a warning, first by path
    missing = binary("z/_ext.so", elf(needed=["libc.so.6", "libnope.so.1"]))  # an error
    assert [f.severity for f in check(archive(launcher, missing))] == [
        Severity.ERROR, Severity.WARNING
    ]  # fmt: skip


# --- edges found by the mutation run (tests/mutation/run abi.check) -----------------------------


def test_a_library_only_in_the_runtimes_library_cache_is_found() -> None:
    # /usr/lib64/mysql is on no search path: only ld.so.cache knows the library is there.
    runtime = dataclasses.replace(
        facts(), libraries={"libc.so.6": ("/lib64",), "libmysqlclient.so.18": ("/usr/lib64/mysql",)}
    )
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libmysqlclient.so.18"]))
    assert check(archive(ext), runtime=runtime) == []
    gone = dataclasses.replace(runtime, libraries={"libc.so.6": ("/lib64",)})
    assert [f.library for f in check(archive(ext), runtime=gone)] == ["libmysqlclient.so.18"]


def test_a_need_with_a_slash_ignores_the_search_path() -> None:
    # ld.so opens a name with a '/' as a path (from the working directory, /var/task), even
    # when the search path would find a file of that name.
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "vendor/libdep.so.1"], rpath=["$ORIGIN"]))
    (finding,) = check(archive(ext, binary("pkg/vendor/libdep.so.1", elf())))
    assert (finding.kind, finding.library) == (FindingKind.MISSING_LIBRARY, "vendor/libdep.so.1")


def test_libraries_that_need_each_other_are_checked_once() -> None:
    one = binary("lib/libone.so.1", elf(needed=["libc.so.6", "libtwo.so.1"], rpath=["$ORIGIN"]))
    two = binary("lib/libtwo.so.1", elf(needed=["libc.so.6", "libone.so.1"], rpath=["$ORIGIN"]))
    ext = binary("pkg/_ext.so", elf(needed=["libone.so.1"], rpath=["$ORIGIN/../lib"]))
    assert check(archive(ext, one, two)) == []


def test_origin_in_a_layer_is_the_layers_directory() -> None:
    ext = binary("python/pkg/_ext.so", elf(needed=["libfoo.so.1"], rpath=["$ORIGIN/../pkg.libs"]))
    layer = archive(ext, binary("python/pkg.libs/libfoo.so.1", elf(needed=[])), root="/opt")
    assert check(layer) == []
    elsewhere = archive(ext, binary("python/other/libfoo.so.1", elf(needed=[])), root="/opt")
    (finding,) = check(elsewhere)
    assert "searched /opt/python/pkg.libs, " in finding.has


def test_runpath_is_not_passed_on_and_stops_the_loaders_rpath() -> None:
    # A needs B, found only in deps/ (on _ext's DT_RPATH).
    lib_a = binary("pkg.libs/liba.so.1", elf(needed=["libb.so.1"]))
    lib_b = binary("deps/libb.so.1", elf(needed=[]))
    # _ext has both: its DT_RUNPATH disables its DT_RPATH, for A too.
    both = elf(needed=["liba.so.1"], rpath=["$ORIGIN/../deps"], runpath=["$ORIGIN/../pkg.libs"])
    findings = check(archive(binary("pkg/_ext.so", both), lib_a, lib_b))
    assert [(f.path, f.library) for f in findings] == [("pkg.libs/liba.so.1", "libb.so.1")]
    # _ext has only DT_RPATH, which A inherits, unless A has a DT_RUNPATH of its own.
    ext = binary(
        "pkg/_ext.so", elf(needed=["liba.so.1"], rpath=["$ORIGIN/../deps", "$ORIGIN/../pkg.libs"])
    )
    assert check(archive(ext, lib_a, lib_b)) == []
    own = binary("pkg.libs/liba.so.1", elf(needed=["libb.so.1"], runpath=["/nowhere"]))
    findings = check(archive(ext, own, lib_b))
    assert [(f.path, f.library) for f in findings] == [("pkg.libs/liba.so.1", "libb.so.1")]


def test_an_unreadable_shipped_library_meets_the_versions_needed_from_it() -> None:
    # Its versions cannot be read: it is reported as unreadable, not as lacking versions.
    ext = binary("pkg/_ext.so", elf(needed=["libfoo.so.1"], needs=[("libfoo.so.1", "FOO_1.1")]))
    broken = binary("lib/libfoo.so.1", None, error="a truncated ELF header")
    assert kinds(check(archive(ext, broken))) == [
        (FindingKind.UNREADABLE, Severity.WARNING, "lib/libfoo.so.1")
    ]


def test_an_unnumbered_version_does_not_hide_the_versions_after_it() -> None:
    ext = binary(
        "pkg/_ext.so", elf(needs=[("libc.so.6", "GLIBC_PRIVATE"), ("libc.so.6", "GLIBC_2.28")])
    )
    (finding,) = check(archive(ext))
    assert finding.needs == "GLIBC_2.28 (sym) from libc.so.6"


def test_a_version_finding_names_the_symbols_and_what_the_shipped_library_defines() -> None:
    needs = (
        VersionNeed(library="libfoo.so.1", version="FOO_1.2", weak=False, symbols=("a", "b")),
        VersionNeed(library="libfoo.so.1", version="FOO_1.3", weak=False, symbols=()),
    )
    ext = binary(
        "pkg/_ext.so", dataclasses.replace(elf(needed=["libfoo.so.1"]), version_needs=needs)
    )
    shipped = binary("lib/libfoo.so.1", elf(needed=[], defines=["FOO_1.0", "FOO_1.1"]))
    (finding,) = check(archive(ext, shipped))
    assert finding.needs == "FOO_1.2 (a, b), FOO_1.3 from libfoo.so.1"
    assert finding.has == "the archive's lib/libfoo.so.1 defines only FOO_1.0, FOO_1.1"
    assert finding.fix == "Ship the lib/libfoo.so.1 that pkg was built against, or rebuild pkg."


def test_a_probed_library_that_lacks_a_version_names_the_newest_of_each_family() -> None:
    runtime = facts(
        versions={
            "libc.so.6": frozenset({"GLIBC_2.2.5", "GLIBC_2.26"}),
            "libstdc++.so.6": frozenset({"GLIBCXX_3.4.24", "CXXABI_1.3.11"}),
            "libz.so.1": frozenset({"ZLIB_1.2.0"}),
        },
        libraries=("libc.so.6", "libstdc++.so.6", "libz.so.1"),
    )
    needs = [
        ("libstdc++.so.6", "GLIBCXX_3.4.30"), ("libstdc++.so.6", "CXXABI_1.3.13"),
        ("libc.so.6", "GLIBC_ABI_DT_RELR"), ("libz.so.1", "ZLIB_1.2.9"),
    ]  # fmt: skip
    ext = binary(
        "pkg/_ext.so", elf(needed=["libc.so.6", "libstdc++.so.6", "libz.so.1"], needs=needs)
    )
    has = {f.library: f.has for f in check(archive(ext), runtime=runtime)}
    assert has == {
        "libc.so.6": "the runtime's libc.so.6 (test runtime) lacks it: its newest is GLIBC_2.26",
        "libstdc++.so.6": "the runtime's libstdc++.so.6 (test runtime) lacks it: its newest is "
        "CXXABI_1.3.11, GLIBCXX_3.4.24",
        "libz.so.1": "the runtime's libz.so.1 (test runtime) lacks it",  # no known ceiling
    }


def test_a_version_above_the_data_ceilings_names_the_ceiling_of_each_family() -> None:
    needs = [
        ("libstdc++.so.6", "GLIBCXX_3.4.30"), ("libstdc++.so.6", "CXXABI_1.3.13"),
        ("libc.so.6", "GLIBC_ABI_DT_RELR"),
    ]  # fmt: skip
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libstdc++.so.6"], needs=needs))
    has = {f.library: f.has for f in check(archive(ext))}
    assert has == {
        "libc.so.6": "test runtime goes up to GLIBC_2.26",
        "libstdc++.so.6": "test runtime goes up to CXXABI_1.3.11, GLIBCXX_3.4.24",
    }


def test_only_other_versions_of_the_same_library_are_offered() -> None:
    ext = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libfoo.so.6"]))
    runtime = facts(libraries=("libc.so.6", "libfoo.so.7", "libfoo.sock.so.6"))
    (finding,) = check(archive(ext), runtime=runtime)
    assert finding.has.endswith("; the runtime has only libfoo.so.7")
    sock = binary("pkg/_ext.so", elf(needed=["libc.so.6", "libfoo.sock.so.5"]))
    (finding,) = check(archive(sock), runtime=runtime)
    assert finding.has.endswith("; the runtime has only libfoo.sock.so.6")


def test_a_foreign_file_at_the_top_of_the_archive_is_judged_by_its_name() -> None:
    found = check(
        archive(
            binary("tool.exe", None, kind=BinaryKind.PE),
            binary("_ext.so", None, kind=BinaryKind.MACHO),
        )
    )
    assert kinds(found) == [
        (FindingKind.FOREIGN_BINARY, Severity.ERROR, "_ext.so"),
        (FindingKind.FOREIGN_BINARY, Severity.WARNING, "tool.exe"),
    ]


def test_only_missing_libraries_are_listed_for_repair() -> None:
    ext = binary(
        "pkg/_ext.so", elf(needed=["libc.so.6", "libpq.so.5"], needs=[("libc.so.6", "GLIBC_2.28")])
    )
    findings = check(archive(ext))
    assert {f.kind for f in findings} == {FindingKind.MISSING_LIBRARY, FindingKind.SYMBOL_VERSION}
    assert missing_libraries(findings) == {"pkg/_ext.so": ("libpq.so.5",)}


def test_a_finding_as_json_has_plain_values() -> None:
    (finding,) = check(archive(binary("x.so", elf(needed=["libnope.so.1"]), wheel=None)))
    assert finding.to_json() == {
        "kind": "missing-library", "severity": "error", "path": "x.so", "root": "/var/task",
        "package": None, "needs": finding.needs, "has": finding.has, "fix": finding.fix,
        "library": "libnope.so.1",
    }  # fmt: skip


@pytest.mark.parametrize("count", [25, 26])
def test_abi_error_lists_the_first_25_errors_and_counts_the_rest(count: int) -> None:
    findings = check(
        archive(*(binary(f"m{i:02}.so", elf(needed=["libnope.so.1"])) for i in range(count)))
    )
    error = abi_error(findings, target())
    assert error is not None
    first, *lines = str(error).splitlines()
    assert (
        first
        == f"{count} binary file(s) of the archive for {target().describe()} cannot load in the runtime:"
    )
    assert [line.split(" ", 2)[1] for line in lines[:25]] == [f"m{i:02}.so" for i in range(25)]
    assert lines[25:] == ([] if count == 25 else ["- ... and 1 more"])
    assert error.hint is not None
    assert "nativebuild verify ARCHIVE" in error.hint
