"""What `nativebuild verify` imports and which target it assumes, worked out without a
container (the runs themselves are in tests/integration/test_verify.py)."""

from __future__ import annotations

import pytest

from nativebuild.abi.verify import modules_to_import
from nativebuild.cli.verify import target_from_name


def test_modules_to_import_from_distributions_and_source() -> None:
    names = [
        "numpy/__init__.py", "numpy/core/_multiarray_umath.cpython-39-x86_64-linux-gnu.so",
        "numpy.libs/libopenblas-r0.3.so", "numpy-1.26.4.dist-info/RECORD",
        "_cffi_backend.cpython-39-x86_64-linux-gnu.so", "six.py", "bin/f2py",
        "app.py", "setup.py", "conftest.py", "tests/__init__.py", "test_app.py",
        "mypkg/__init__.py", "templates/index.html", "README.md", "lib/libfoo.so.1",
    ]  # fmt: skip
    owners = {
        "numpy/__init__.py": "numpy 1.26.4",
        "numpy/core/_multiarray_umath.cpython-39-x86_64-linux-gnu.so": "numpy 1.26.4",
        "_cffi_backend.cpython-39-x86_64-linux-gnu.so": "cffi 1.16.0",
        "six.py": "six 1.16.0",
    }
    assert modules_to_import(names, owners) == [
        ("_cffi_backend", "cffi 1.16.0"),
        ("app", None),
        ("mypkg", None),
        ("numpy", "numpy 1.26.4"),
        ("six", "six 1.16.0"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("function-python3.12-arm64.zip", ("python3.12", "arm64")),
        ("my-app-python3.9-x86_64.zip", ("python3.9", "x86_64")),
        ("function.zip", (None, None)),
    ],
)
def test_target_from_the_archive_name(name: str, expected: tuple[str | None, str | None]) -> None:
    assert target_from_name(name) == expected
