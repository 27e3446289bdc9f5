"""One way to hide credentials, for every message, log line and cache document."""

from __future__ import annotations

import pytest

from nativebuild.redact import has_credentials, redact, redact_secrets, strip_credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://u:p@host/simple", "https://***@host/simple"),
        ("https://token@host/x", "https://***@host/x"),
        ("https://u:p@ss@host/x", "https://***@host/x"),  # an unencoded @ in the password
        (
            "see `https://u:p@h/x` and git+ssh://git@github.com/o/r",
            "see `https://***@h/x` and git+ssh://***@github.com/o/r",
        ),
        ("https://host/path@v1 stays", "https://host/path@v1 stays"),  # @ in the path: no userinfo
        ("mail a@b.c", "mail a@b.c"),
    ],
)
def test_redact_hides_the_user_information_of_every_url(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_strip_credentials_removes_them_entirely() -> None:
    assert strip_credentials("https://u:p@host/x.whl#sha256=ab") == "https://host/x.whl#sha256=ab"
    assert strip_credentials("https://host/x.whl") == "https://host/x.whl"


def test_known_secrets_are_replaced_but_short_values_kept() -> None:
    assert redact_secrets("token s3cr3t-value and ab", ["s3cr3t-value", "ab"]) == "token *** and ab"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"pins": [{"url": "https://u:t@h/x.whl"}]}, True),
        ({"pins": [("https://h/x.whl",)]}, False),
        ("https://@h/x", False),  # empty user information is not a credential
    ],
)
def test_has_credentials_looks_through_nested_documents(document: object, expected: bool) -> None:
    assert has_credentials(document) is expected
