"""Runs INSIDE the runtime image, with the runtime's Python (3.9 or newer): no nativebuild
imports, standard library only.

Imports each module in a fresh interpreter of its own (so a crash, an ``exit()`` or a
monkey-patch in one cannot hide or cause the failure of another), a few at a time, then
optionally calls a handler with an event the way Lambda does. Writes one JSON document of
results to the path given.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DETAIL_LINES = 15
MAX_RESULT_CHARS = 4000
RESULT_MARKER = "@@nativebuild-handler-result@@"

IMPORT_CHILD = "import importlib, sys\nimportlib.import_module(sys.argv[1])\n"

HANDLER_CHILD = """
import importlib, json, os, sys, time, uuid

class LambdaContext:
    def __init__(self, timeout):
        self._deadline = time.time() + timeout
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "nativebuild-verify")
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            "arn:aws:lambda:us-east-1:000000000000:function:" + self.function_name
        )
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "nativebuild-verify"
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))

module_name, _, function_name = sys.argv[1].rpartition(".")
module = importlib.import_module(module_name.replace("/", "."))
handler = getattr(module, function_name)
event = json.loads(sys.stdin.read() or "null")
result = handler(event, LambdaContext(float(sys.argv[2])))
sys.stdout.write("\\n" + sys.argv[3] + json.dumps(result, default=str) + "\\n")
"""


def _tail(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-DETAIL_LINES:]


def _failure(completed: subprocess.CompletedProcess[str]) -> tuple[str, list[str]]:
    detail = _tail(completed.stderr)
    if completed.returncode < 0:
        try:
            name = signal.Signals(-completed.returncode).name
        except ValueError:
            name = f"signal {-completed.returncode}"
        return f"the interpreter crashed ({name})", detail
    error = detail[-1] if detail else f"exited with status {completed.returncode}"
    return error, detail


def run_child(
    argv: list[str], timeout: float, stdin: str | None = None
) -> tuple[dict[str, Any], str]:
    started = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, *argv],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        seconds = round(time.monotonic() - started, 3)
        result = {"ok": False, "seconds": seconds, "error": f"timed out after {timeout:.0f}s"}
        return {**result, "detail": []}, ""
    seconds = round(time.monotonic() - started, 3)
    if completed.returncode == 0:
        return {"ok": True, "seconds": seconds, "error": None, "detail": []}, completed.stdout
    error, detail = _failure(completed)
    return {"ok": False, "seconds": seconds, "error": error, "detail": detail}, completed.stdout


def import_module(name: str, timeout: float) -> dict[str, Any]:
    result, _ = run_child(["-c", IMPORT_CHILD, name], timeout)
    return {"name": name, **result}


def call_handler(handler: str, event: Any, timeout: float) -> dict[str, Any]:
    argv = ["-c", HANDLER_CHILD, handler, str(timeout), RESULT_MARKER]
    result, stdout = run_child(argv, timeout, stdin=json.dumps(event))
    returned = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            returned = line[len(RESULT_MARKER) :][:MAX_RESULT_CHARS]
            break
    return {"handler": handler, **result, "result": returned}


def main(in_path: str, out_path: str) -> None:
    request = json.loads(Path(in_path).read_text(encoding="utf-8"))
    timeout = float(request.get("timeout", 300))
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        modules = list(pool.map(lambda name: import_module(name, timeout), request["modules"]))
    handler = None
    if request.get("handler"):
        handler = call_handler(request["handler"], request.get("event"), timeout)
    document = {
        "python": sys.version.split()[0],
        "machine": os.uname().machine,
        "uid": os.getuid(),
        "modules": modules,
        "handler": handler,
    }
    Path(out_path).write_text(json.dumps(document), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
