"""The credentials ``docker login`` left for a registry, read the way the docker CLI reads them.

``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``): a per-registry credential
helper (``credHelpers``), else the default store (``credsStore``), else the inline ``auths``
entry (base64 ``user:password``). A helper is the program ``docker-credential-NAME``, asked with
``get`` and the registry host on stdin; for ECR, ``docker-credential-ecr-login`` (or ``aws ecr
get-login-password | docker login``) puts them there. Secrets never reach a message.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nativebuild.errors import PublishError

HELPER_TIMEOUT_S = 60
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a helper's marker for an OAuth identity token


@dataclasses.dataclass(frozen=True, kw_only=True)
class Credentials:
    username: str
    secret: str = dataclasses.field(repr=False)

    @property
    def identity_token(self) -> bool:
        return self.username == IDENTITY_TOKEN_USER


HelperRunner = Callable[[Sequence[str], str], str]  # (argv, stdin) -> stdout


def run_helper(argv: Sequence[str], stdin: str) -> str:
    completed = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=HELPER_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        detail = completed.stdout.strip() or completed.stderr.strip()
        if "credentials not found" in detail.lower():
            return ""
        msg = f"The credential helper {argv[0]} failed (exit {completed.returncode})."
        raise PublishError(msg, hint=f"Run `{argv[0]} get` by hand, or `docker login` again.")
    return completed.stdout


def config_path(env: Mapping[str, str]) -> Path:
    directory = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME", str(Path.home()))) / ".docker")
    return Path(directory) / "config.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        msg = f"Cannot read docker's credentials in {path}: {err}."
        raise PublishError(msg, hint="Fix the file, or `docker login` again.") from err
    return document if isinstance(document, dict) else {}


def _same_host(key: str, host: str) -> bool:
    name = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return name == host


def credentials_for(
    host: str, env: Mapping[str, str], *, helper: HelperRunner = run_helper
) -> Credentials | None:
    """What docker would send to ``host``; None when it has nothing (anonymous)."""
    config = _load(config_path(env))
    helpers = config.get("credHelpers") or {}
    name = next((v for k, v in helpers.items() if _same_host(k, host)), None)
    name = name or config.get("credsStore")
    if isinstance(name, str) and name:
        answer = helper([f"docker-credential-{name}", "get"], host)
        if answer.strip():
            try:
                found = json.loads(answer)
                return Credentials(username=str(found["Username"]), secret=str(found["Secret"]))
            except (ValueError, KeyError, TypeError) as err:
                msg = (
                    f"The credential helper docker-credential-{name} answered something unreadable."
                )
                raise PublishError(msg, hint="Run `docker login` again.") from err
    auths = config.get("auths") or {}
    entry = next((v for k, v in auths.items() if _same_host(k, host)), None)
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials(username=IDENTITY_TOKEN_USER, secret=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as err:
            msg = f"The saved login for {host} in {config_path(env)} is not base64 user:password."
            raise PublishError(msg, hint=f"Run `docker login {host}` again.") from err
        return Credentials(username=user, secret=password)
    if entry.get("username") and entry.get("password"):
        return Credentials(username=str(entry["username"]), secret=str(entry["password"]))
    return None
