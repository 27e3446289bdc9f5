"""An archive unpacked into a folder: ``build --artifacts-dir``, for SAM's makefile builds.

``sam build`` with ``Metadata.BuildMethod: makefile`` runs ``make build-<LogicalId>`` and then
takes whatever the target left in ``$(ARTIFACTS_DIR)`` as the function (or, for a layer, the
layer's ``python/`` tree), which it zips itself at ``sam package`` time. So the target must leave
the archive's files, unzipped: exactly the entries of the reproducible archive, with its modes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from nativebuild.archive.wheels import member_mode, unsafe_reason
from nativebuild.errors import ArchiveError


def unpack_archive(archive: Path, dest: Path) -> int:
    """Write every file of ``archive`` under ``dest`` (each one atomically, replacing what is
    there); returns the number of files."""
    count = 0
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                reason = unsafe_reason(info.filename)
                if reason is not None:
                    msg = f"{archive.name}: member {info.filename!r} {reason}."
                    raise ArchiveError(msg)
                target = dest / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
                )
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(info) as member:
                        shutil.copyfileobj(member, out)
                    Path(tmp).chmod(member_mode(info))
                    Path(tmp).replace(target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                count += 1
    except (OSError, zipfile.BadZipFile) as err:
        msg = f"Cannot unpack {archive} into {dest}: {err}."
        raise ArchiveError(msg, hint="Check the artifacts directory and free disk space.") from err
    return count
