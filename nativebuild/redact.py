"""Credentials out of everything nativebuild shows or keeps: messages, logs, cache documents.

Index URLs may carry ``user:token@``; container logs may echo a secret. One place decides how
they are hidden, so no path of output forgets it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

# The user information of a URL: up to the last "@" before the path. Quotes and backticks end
# it, because tools quote URLs in their messages (uv: `https://...`).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s`'\"]*@")
_HAS_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s`'\"]+@")
_MIN_SECRET = 4  # shorter values would blank out ordinary words


def redact(text: str) -> str:
    """Every URL in ``text`` without its credentials: ``https://u:p@host/`` → ``https://***@host/``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def strip_credentials(url: str) -> str:
    """``url`` without user information at all (``https://u:p@host/x`` → ``https://host/x``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each known secret value replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, "***")
    return text


def has_credentials(document: object) -> bool:
    """Whether any string in ``document`` (nested lists and mappings) is a URL with credentials."""
    if isinstance(document, str):
        return bool(_HAS_USERINFO.search(document))
    if isinstance(document, Mapping):
        return any(has_credentials(v) for v in document.values())
    if isinstance(document, list | tuple):
        return any(has_credentials(v) for v in document)
    return False
