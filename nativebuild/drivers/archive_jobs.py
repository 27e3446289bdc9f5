"""Runs INSIDE the build image, with the target's Python (3.9 or newer): no nativebuild
imports, standard library only.

Usage: python _archive_driver.py JOBS.json RESULTS.json

JOBS.json holds two lists, both optional:

- ``compile``: ``{"src", "out", "dfile"}``: write ``out``, the bytecode of ``src`` with
  checked-hash invalidation (PEP 552), naming ``dfile`` (its path in Lambda) in tracebacks. A
  file this Python cannot compile (Python 2 syntax, a template) is reported, not fatal.
- ``strip``: ``{"src", "out"}``: ``strip --strip-debug`` with the image's own binutils, which
  are the target architecture's.

RESULTS.json: ``{"compiled": [out...], "compile_failed": [{"src", "error"}], "stripped":
[out...], "strip_failed": [{"src", "error"}]}``.
"""

from __future__ import annotations

import json
import py_compile
import subprocess
import sys
from pathlib import Path

_ERROR_CHARS = 400


def compile_all(jobs: list[dict[str, str]], results: dict[str, list[object]]) -> None:
    mode = py_compile.PycInvalidationMode.CHECKED_HASH
    for job in jobs:
        try:
            py_compile.compile(
                job["src"], cfile=job["out"], dfile=job["dfile"], doraise=True,
                invalidation_mode=mode,
            )  # fmt: skip
        except (py_compile.PyCompileError, SyntaxError, ValueError, OSError) as err:
            results["compile_failed"].append(
                {"src": job["dfile"], "error": str(err)[-_ERROR_CHARS:]}
            )
        else:
            results["compiled"].append(job["out"])


def strip_all(jobs: list[dict[str, str]], results: dict[str, list[object]]) -> None:
    for job in jobs:
        Path(job["out"]).parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["strip", "--strip-debug", "-o", job["out"], job["src"]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            results["stripped"].append(job["out"])
        else:
            error = (done.stderr or done.stdout).strip()[-_ERROR_CHARS:]
            results["strip_failed"].append({"src": job["src"], "error": error})


def main(argv: list[str]) -> int:
    jobs = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    results: dict[str, list[object]] = {
        "compiled": [], "compile_failed": [], "stripped": [], "strip_failed": [],
    }  # fmt: skip
    compile_all(jobs.get("compile", []), results)
    strip_all(jobs.get("strip", []), results)
    Path(argv[2]).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
