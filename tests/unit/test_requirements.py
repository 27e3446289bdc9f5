from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nativebuild.errors import RequirementsFileNotFoundError, RequirementSyntaxError
from nativebuild.inputs.requirements import (
    RequirementSet,
    parse_requirements,
    parse_requirements_text,
)
from nativebuild.redact import redact

BASE = Path("/project")
H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


def parse(
    text: str,
    *,
    files: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> RequirementSet:
    """Parse ``text`` as /project/requirements.txt; ``files`` are includes relative to /project."""
    stored = {BASE / name: content for name, content in (files or {}).items()}

    def read_file(path: Path) -> str:
        if path not in stored:
            raise FileNotFoundError(path)
        return stored[path]

    return parse_requirements_text(
        text, origin="requirements.txt", base_dir=BASE, read_file=read_file, env=env or {}
    )


def specifiers(result: RequirementSet) -> list[str]:
    return [line.specifier for line in result.requirements]


def origins(result: RequirementSet) -> list[str]:
    return [line.origin for line in result.requirements]


def syntax_error(
    text: str, *, files: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> RequirementSyntaxError:
    with pytest.raises(RequirementSyntaxError) as info:
        parse(text, files=files, env=env)
    return info.value


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("-i https://a.example/simple", "index_url", "https://a.example/simple"),
        ("--index-url https://a.example/simple", "index_url", "https://a.example/simple"),
        ("--index-url=https://a.example/simple", "index_url", "https://a.example/simple"),
        ("-ihttps://a.example/simple", "index_url", "https://a.example/simple"),
        ("--index https://a.example/simple", "index_url", "https://a.example/simple"),
        ("-i https://a/simple\n-i https://b/simple", "index_url", "https://b/simple"),
        ("--extra-index-url https://b/simple", "extra_index_urls", ("https://b/simple",)),
        ("--extra-index-url=https://b\n--extra-index-url https://c", "extra_index_urls", ("https://b", "https://c")),
        ("--extra-index-url https://b\n--extra-index-url https://b", "extra_index_urls", ("https://b",)),
        ("--trusted-host a.example", "trusted_hosts", ("a.example",)),
        ("--trusted-host=a.example\n--trusted-host b:8080", "trusted_hosts", ("a.example", "b:8080")),
        ("-f ./wheels", "find_links", (str(BASE / "wheels"),)),
        ("--find-links=/abs/wheels", "find_links", ("/abs/wheels",)),
        ("--find-links https://h/links", "find_links", ("https://h/links",)),
        ("--no-binary a,B_c", "no_binary", ("a", "b-c")),
        ("--only-binary=:all:", "only_binary", (":all:",)),
        ("--prefer-binary", "prefer_binary", True),
        ("--pre", "pre", True),
        ("--pre --prefer-binary", "prefer_binary", True),
        ("--pre --prefer-binary", "pre", True),
        ("--no-index", "no_index", True),
        ("-i https://a/simple\n--no-index", "index_url", None),
        ("--extra-index-url https://b\n--no-index", "extra_index_urls", ()),
        ("--require-hashes", "require_hashes", True),
        ("--require-h", "require_hashes", True),
    ],
)  # fmt: skip
def test_option_forms(text: str, field: str, expected: object) -> None:
    assert getattr(parse(text), field) == expected


def test_options_default_to_empty() -> None:
    result = parse("")
    assert result == RequirementSet(
        requirements=(), constraints=(), index_url=None, extra_index_urls=(), trusted_hosts=(),
        find_links=(), no_binary=(), only_binary=(), prefer_binary=False, pre=False,
    )  # fmt: skip
    assert not result.require_hashes


def test_use_feature_is_ignored() -> None:
    assert parse("--use-feature=truststore\n--use-feature fast-deps") == parse("")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("--index-url", "option --index-url needs a value"),
        ("--index-url=", "option --index-url needs a value"),
        ("-r", "option --requirement needs a value"),
        ("--pre=yes", "option --pre takes no value"),
        ("-x foo", "unknown option '-x'"),
        ("--indx-url https://a", "unknown option '--indx-url'"),
        ("--no- x", "unknown option '--no-'"),  # ambiguous prefix: --no-index, --no-binary
        ("--pre foo", "unexpected 'foo' after options"),
        ("foo --index-url https://a", "option --index-url cannot follow a requirement"),
        ("foo --config-settings a=b", "option --config-settings is not supported"),
        ("foo --global-option=--x", "option --global-option is not supported"),
        ("--config-settings a=b", "option --config-settings is not supported"),
        ("--global-option x", "option --global-option is not supported"),
        (f"--hash={H1}", "option --hash without a requirement"),
        ('-i "https://a', "cannot split"),
        ('-i "https://a b"', "contains whitespace"),
        ("--trusted-host ${H}", "unexpected 'b' after options"),
        ("--no-binary 'a$b'", "'a$b' is not a package name"),
        ("--only-binary=a,-b", "'-b' is not a package name"),
        ("--no-binary :any:", "':any:' is not a package name"),
        ('foo; os_name == "${X}"', "cannot be written back for pip"),
        ('foo; os_name == "${N}"', "cannot parse"),
        ("-r https://h/requirements.txt", "remote requirements file"),
        ("-c file:///tmp/c.txt", "remote requirements file"),
    ],
)
def test_option_errors(text: str, fragment: str) -> None:
    error = syntax_error(text, env={"H": "a b", "X": "a #b", "N": "a\nb"})
    assert str(error).startswith("requirements.txt:1: ")
    assert fragment in str(error)


def test_unknown_option_suggests_the_nearest() -> None:
    assert syntax_error("--indx-url https://a").hint == "Perhaps you meant '--index-url'?"


# --- lines: continuations, comments, environment -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_specifiers", "expected_origins"),
    [
        ("foo==1\n\nbar==2\n", ["foo==1", "bar==2"], ["requirements.txt:1", "requirements.txt:3"]),
        ("foo \\\n  ==1\nbar", ["foo==1", "bar"], ["requirements.txt:1", "requirements.txt:3"]),
        ("foo\\\n==1", ["foo==1"], ["requirements.txt:1"]),  # joined with no space, as pip does
        ("x\nfoo==1 \\", ["x", "foo==1"], ["requirements.txt:1", "requirements.txt:2"]),
        ("foo==1 \\\n# note\nbar", ["foo==1", "bar"], ["requirements.txt:1", "requirements.txt:3"]),
        ("foo==1\\\n# note\nbar", ["foo==1", "bar"], ["requirements.txt:1", "requirements.txt:3"]),
        ("# only a comment\n  # indented\nfoo", ["foo"], ["requirements.txt:3"]),
        ("foo==1 # pinned for reasons", ["foo==1"], ["requirements.txt:1"]),
        ("foo==1\t# tab then comment", ["foo==1"], ["requirements.txt:1"]),
        ("foo==1 # a comment hides the rest \\\nbar", ["foo==1"], ["requirements.txt:1"]),
        ("p @ https://h/p.whl#sha256=ab", ["p @ https://h/p.whl#sha256=ab"], ["requirements.txt:1"]),
        ("foo\r\nbar\r\n", ["foo", "bar"], ["requirements.txt:1", "requirements.txt:2"]),
        ("   \n\t\n", [], []),
    ],
)  # fmt: skip
def test_logical_lines(
    text: str, expected_specifiers: list[str], expected_origins: list[str]
) -> None:
    result = parse(text)
    assert specifiers(result) == expected_specifiers
    assert origins(result) == expected_origins


def test_hashes_on_continuation_lines() -> None:
    text = f"# header\nfoo==1.0 \\\n    --hash={H2} \\\n    --hash {H1}\nbar==2\n"
    result = parse(text)
    assert result.requirements[0].hashes == (H1, H2)
    assert origins(result) == ["requirements.txt:2", "requirements.txt:5"]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("foo==${VERSION}", {"VERSION": "1.2"}, "foo==1.2"),
        ("foo${EXTRA}", {"EXTRA": "[socks]"}, "foo[socks]"),
        ("foo @ https://${TOKEN}@h/f.whl", {}, "foo @ https://${TOKEN}@h/f.whl"),  # undefined: kept
        ("foo @ https://h/$TOKEN/f.whl", {"TOKEN": "t"}, "foo @ https://h/$TOKEN/f.whl"),
        ("foo @ https://h/${token}/f.whl", {"token": "t"}, "foo @ https://h/${token}/f.whl"),
        ("foo==1 ${COMMENT}", {"COMMENT": "; python_version < '3.12'"}, 'foo==1; python_version < "3.12"'),
    ],
)  # fmt: skip
def test_env_expansion_in_requirements(text: str, env: dict[str, str], expected: str) -> None:
    assert specifiers(parse(text, env=env)) == [expected]


def test_env_expansion_in_options() -> None:
    env = {"USER_": "me", "PASSWORD": "s3cret"}
    result = parse("-i https://${USER_}:${PASSWORD}@h/simple  # private index", env=env)
    assert result.index_url == "https://me:s3cret@h/simple"


def test_env_expands_after_comments_are_stripped() -> None:
    # pip strips comments first, so a '#' from a variable is no comment: here it is a stray token.
    with pytest.raises(RequirementSyntaxError, match="unexpected '#x' after options"):
        parse("-i https://h/simple${FRAGMENT}", env={"FRAGMENT": " #x"})
    assert parse("-i https://h/${A}  # ${B}", env={"A": "s"}).index_url == "https://h/s"


# --- requirement forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "specifier"),
    [
        ("MarkupSafe==2.1.5", "markupsafe", "markupsafe==2.1.5"),
        ("Foo_Bar.baz >= 1.0 , < 2", "foo-bar-baz", "foo-bar-baz<2,>=1.0"),
        ("requests[SOCKS,security]>=2; python_version<'3.10'", "requests",
         'requests[security,socks]>=2; python_version < "3.10"'),
        ("pkg @ https://h/pkg-1.0-py3-none-any.whl", "pkg", "pkg @ https://h/pkg-1.0-py3-none-any.whl"),
        ("pkg@git+https://github.com/o/pkg@v1", "pkg", "pkg @ git+https://github.com/o/pkg@v1"),
        ("pkg @ https://h/p.zip ; sys_platform == 'linux'", "pkg",
         'pkg @ https://h/p.zip ; sys_platform == "linux"'),
        ("numpy", "numpy", "numpy"),
    ],
)  # fmt: skip
def test_requirement_forms(text: str, name: str, specifier: str) -> None:
    (line,) = parse(text).requirements
    assert (line.name, line.specifier, line.hashes) == (name, specifier, ())


def test_duplicates_are_kept_in_file_order() -> None:
    assert specifiers(parse("b\na>1\nb<3\n")) == ["b", "a>1", "b<3"]


@pytest.mark.parametrize(
    ("text", "origin", "fragment"),
    [
        ("foo\n\n# c\nbar==\n", "requirements.txt:4", "cannot parse 'bar=='"),
        ("ok==1\nbad \\\n  ==\n", "requirements.txt:2", "cannot parse 'bad   =='"),
        ("ok==1\nfoo (>=1\n", "requirements.txt:2", "cannot parse 'foo (>=1'"),
        ("foo>=1,,<2\n", "requirements.txt:1", "cannot parse 'foo>=1,,<2'"),
        ("foo[\n", "requirements.txt:1", "cannot parse 'foo['"),
        ("foo;\n", "requirements.txt:1", "cannot parse 'foo;'"),
        ("foo; python_version ~ '3'\n", "requirements.txt:1", "cannot parse"),
        ("foo==1 bar==2", "requirements.txt:1", "cannot parse 'foo==1 bar==2'"),
        ('foo; os_name == "\\N"', "requirements.txt:1", "cannot parse"),
        ('foo; os_name == "\\d"', "requirements.txt:1", "cannot parse"),
        ('foo; os_name == "a\x00"', "requirements.txt:1", "cannot parse"),
    ],
)
def test_malformed_lines_name_their_first_physical_line(
    text: str, origin: str, fragment: str
) -> None:
    error = syntax_error(text)
    assert str(error).startswith(f"{origin}: {fragment}")
    assert error.hint is not None
    assert "NAME @ URL" in error.hint


def test_malformed_line_in_an_include_names_the_included_file() -> None:
    files = {"sub/base.txt": "ok\n\nfoo==\n"}
    error = syntax_error("first\n-r sub/base.txt\n", files=files)
    assert str(error).startswith("sub/base.txt:3: cannot parse 'foo=='")


@pytest.mark.parametrize(
    "text",
    ["-e .", "--editable=./pkg", "-e git+https://github.com/o/p#egg=p", "--edit ./p", "foo -e ."],
)
def test_editable_installs_are_refused(text: str) -> None:
    error = syntax_error(text)
    assert str(error).startswith("requirements.txt:1: ")
    assert "editable installs cannot go into a Lambda archive" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "./libs/pkg", "libs/pkg", "/abs/pkg", ".", "..", "../pkg[extra]", "~/pkg",
        "pkg.whl", "dist/foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz", "C:\\pkgs\\foo",
        "file:///srv/pkg", "foo @ file:///srv/foo", "foo @ ./libs/foo", "foo @ C:\\foo",
        "./libs/pkg; python_version > '3'",
    ],
)  # fmt: skip
def test_local_paths_are_refused_for_now(text: str) -> None:
    error = syntax_error(f"ok\n{text}")
    assert str(error).startswith("requirements.txt:2: ")
    assert "is a local path" in str(error)
    assert error.hint is not None
    assert "not supported yet" in error.hint


@pytest.mark.parametrize(
    "text", ["https://h/foo-1.0.tar.gz", "git+https://github.com/o/p@v1", "https://h/p.whl; os_name=='posix'"]
)  # fmt: skip
def test_urls_without_a_name_are_refused(text: str) -> None:
    error = syntax_error(text)
    assert "has no package name" in str(error)
    assert error.hint == "Name the package: 'NAME @ URL'."


# --- hashes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (f"--hash={H1}", (H1,)),
        (f"--hash {H1}", (H1,)),
        (f"--hash={H2} --hash={H1}", (H1, H2)),
        (f"--hash={H1} --hash={H1}", (H1,)),
        ("--hash=sha256:" + "AB" * 32, ("sha256:" + "ab" * 32,)),
        ("--hash=sha384:" + "c" * 96, ("sha384:" + "c" * 96,)),
        ("--hash=sha512:" + "d" * 128, ("sha512:" + "d" * 128,)),
    ],
)
def test_hashes(options: str, expected: tuple[str, ...]) -> None:
    result = parse(f"foo==1 {options}")
    assert result.requirements[0].hashes == expected
    assert result.require_hashes


@pytest.mark.parametrize(
    "value",
    [
        "md5:" + "a" * 32, "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "g" * 64,
        "a" * 64, "SHA256:" + "a" * 64, "sha384:" + "a" * 64, "sha256:",
    ],
)  # fmt: skip
def test_bad_hashes_are_refused(value: str) -> None:
    error = syntax_error(f"foo==1 --hash={value}")
    assert str(error).startswith(f"requirements.txt:1: bad hash {value!r}")


def test_require_hashes_only_when_some_requirement_has_one() -> None:
    assert not parse("foo==1\nbar==2").require_hashes
    assert parse(f"foo==1\nbar==2 --hash={H1}").require_hashes
    assert not parse("foo==1\n-c c.txt", files={"c.txt": f"foo==1 --hash={H1}"}).require_hashes


# --- --no-binary / --only-binary -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "no_binary", "only_binary"),
    [
        ("--no-binary a\n--no-binary b", ("a", "b"), ()),
        ("--no-binary a,b\n--only-binary a", ("b",), ("a",)),
        ("--no-binary :all:\n--only-binary a", (":all:",), ("a",)),
        ("--only-binary b\n--no-binary :all:", (":all:",), ()),
        ("--no-binary :all:\n--no-binary 3to2,x", (":all:", "3to2", "x"), ()),
        ("--no-binary a\n--no-binary :none:", (), ()),
        ("--no-binary a\n--no-binary :none:,b", ("b",), ()),
        ("--no-binary :all:,:none:,b", ("b",), ()),
        ("--no-binary x,:all:,y", (":all:",), ()),
        ("--only-binary a\n--no-binary :all:,:none:", (), ()),
        ("--no-binary Foo_Bar,,", ("foo-bar",), ()),
        ("--no-binary=:all: --only-binary=:all:", (), (":all:",)),
    ],
)
def test_binary_options_accumulate_like_pip(
    text: str, no_binary: tuple[str, ...], only_binary: tuple[str, ...]
) -> None:
    result = parse(text)
    assert (result.no_binary, result.only_binary) == (no_binary, only_binary)
    replayed = parse(result.pip_requirements_text())
    assert (replayed.no_binary, replayed.only_binary) == (no_binary, only_binary)


# --- includes and constraints ------------------------------------------------------------------


def test_nested_includes_are_relative_to_the_including_file() -> None:
    files = {
        "sub/base.txt": "alpha==1\n-r ../common.txt\n-c constraints.txt\n-f wheels\n",
        "common.txt": "\nbeta==2\n--requirement=sub/deeper/last.txt\n",
        "sub/deeper/last.txt": "gamma==3\n",
        "sub/constraints.txt": "# pins\nalpha<2\n-r ../delta.txt\n",  # -r here adds requirements
        "delta.txt": "delta\n",
    }
    result = parse("first\n-r sub/base.txt\nlast\n", files=files)
    assert specifiers(result) == ["first", "alpha==1", "beta==2", "gamma==3", "delta", "last"]
    assert origins(result) == [
        "requirements.txt:1", "sub/base.txt:1", "common.txt:2", "sub/deeper/last.txt:1",
        "delta.txt:1", "requirements.txt:3",
    ]  # fmt: skip
    assert [(c.specifier, c.origin) for c in result.constraints] == [
        ("alpha<2", "sub/constraints.txt:2")
    ]
    assert result.find_links == (str(BASE / "sub" / "wheels"),)


def test_the_same_file_may_be_included_twice() -> None:
    files = {"a.txt": "-r common.txt\n", "b.txt": "-r common.txt\n", "common.txt": "x\n"}
    assert specifiers(parse("-r a.txt\n-r b.txt\n", files=files)) == ["x", "x"]


@pytest.mark.parametrize(
    ("text", "files", "origin", "chain"),
    [
        ("-r requirements.txt", {}, "requirements.txt:1", "requirements.txt -> requirements.txt"),
        ("-r a.txt", {"a.txt": "-r b.txt"}, "b.txt:1", "requirements.txt -> a.txt -> b.txt -> a.txt"),
        ("-r a.txt", {"a.txt": "x\n-c ./a.txt"}, "a.txt:2", "requirements.txt -> a.txt -> a.txt"),
        ("-c sub/a.txt", {"sub/a.txt": "-r ../requirements.txt"}, "sub/a.txt:1",
         "requirements.txt -> sub/a.txt -> requirements.txt"),
    ],
)  # fmt: skip
def test_include_cycles_are_refused(
    text: str, files: dict[str, str], origin: str, chain: str
) -> None:
    files = {"b.txt": "-r a.txt", **files}
    error = syntax_error(text, files=files)
    assert str(error).startswith(f"{origin}: include cycle: ")
    assert chain in str(error)


def test_deep_include_chains_are_cut_off() -> None:
    files = {"x" * n + ".txt": f"-r {'x' * (n + 1)}.txt" for n in range(1, 100)}
    with pytest.raises(RequirementSyntaxError, match="includes nest too deep"):
        parse("-r x.txt", files=files)


def test_missing_include_names_the_including_line() -> None:
    with pytest.raises(RequirementsFileNotFoundError) as info:
        parse("-r sub/base.txt", files={"sub/base.txt": "ok\n-c missing.txt\n"})
    assert str(info.value) == "sub/base.txt:2: included requirements file sub/missing.txt not found"
    assert info.value.hint is not None
    assert str(BASE / "sub") in info.value.hint


def test_constraints_stay_out_of_the_requirements_file() -> None:
    files = {"c.txt": f"Foo_Bar==1.0 --hash={H1}\nbaz<3\n"}
    result = parse("foo-bar\n-c c.txt\n", files=files)
    assert result.pip_requirements_text() == "foo-bar\n"
    assert result.pip_constraints_text() == f"foo-bar==1.0 --hash={H1}\nbaz<3\n"


def test_constraints_cannot_have_extras() -> None:
    error = syntax_error("-c c.txt", files={"c.txt": "\nrequests[socks]==2"})
    assert str(error).startswith("c.txt:2: constraint 'requests[socks]==2' has extras")


# --- output for pip ----------------------------------------------------------------------------


RICH = f"""\
# Production requirements
--index-url https://user:secret@pypi.internal/simple
--extra-index-url https://mirror.example/simple?x=1&y=2
--trusted-host pypi.internal
--find-links ./wheels
--no-binary :all:
--only-binary numpy
--prefer-binary
--pre
MarkupSafe==2.1.5 \\
    --hash={H2} \\
    --hash={H1}
requests[socks]>=2; python_version<"3.10"
pkg @ https://tok@files.example/pkg-1.0.tar.gz
-c constraints.txt
"""


def test_pip_requirements_text_is_flattened_and_keeps_credentials() -> None:
    result = parse(RICH, files={"constraints.txt": "urllib3<2\n"})
    assert result.pip_requirements_text() == (
        "--index-url https://user:secret@pypi.internal/simple\n"
        "--extra-index-url 'https://mirror.example/simple?x=1&y=2'\n"
        "--trusted-host pypi.internal\n"
        "--no-binary :all:\n"
        "--only-binary numpy\n"
        "--prefer-binary\n"
        "--pre\n"
        f"markupsafe==2.1.5 --hash={H1} --hash={H2}\n"
        'requests[socks]>=2; python_version < "3.10"\n'
        "pkg @ https://tok@files.example/pkg-1.0.tar.gz\n"
    )
    assert result.pip_constraints_text() == "urllib3<2\n"


def test_no_index_and_require_hashes_reach_pip() -> None:
    text = parse("--no-index\n--require-hashes\nfoo==1").pip_requirements_text()
    assert text == "--no-index\n--require-hashes\nfoo==1\n"


def test_pip_text_parses_back_to_the_same_set() -> None:
    result = parse(RICH, files={"constraints.txt": "urllib3<2\n"})
    replayed = parse(result.pip_requirements_text())
    strip = {"find_links": (), "constraints": ()}  # neither goes into the pip file
    assert dataclasses.replace(replayed, requirements=()) == dataclasses.replace(
        result, requirements=(), **strip
    )
    assert [(r.name, r.specifier, r.hashes) for r in replayed.requirements] == [
        (r.name, r.specifier, r.hashes) for r in result.requirements
    ]


# --- redaction and fingerprint -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:secret@host/x", "https://***@host/x"),
        ("https://:secret@host/x", "https://***@host/x"),
        ("https://token@host:8443/simple", "https://***@host:8443/simple"),
        ("https://us%40er:p@ss@host/x", "https://***@host/x"),
        ("git+https://tok@github.com/o/p@v1", "git+https://***@github.com/o/p@v1"),
        ("https://host/path@x", "https://host/path@x"),
        ("https://host/simple", "https://host/simple"),
        ("https://${TOKEN}@host/", "https://***@host/"),
        ("/local/wheels", "/local/wheels"),
        ("pkg @ https://u:p@h/p.whl ; os_name == 'nt'", "pkg @ https://***@h/p.whl ; os_name == 'nt'"),
        ("https://***@host/x", "https://***@host/x"),
    ],
)  # fmt: skip
def test_redact_url(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_fingerprint_hides_credentials() -> None:
    one = parse("-i https://u:one@h/simple\np @ https://t1@h/p.whl\n")
    two = parse("-i https://u:two@h/simple\np @ https://t2@h/p.whl\n")
    assert one.fingerprint() == two.fingerprint()
    assert "one" in one.pip_requirements_text()


def test_error_messages_hide_credentials() -> None:
    error = syntax_error("p @ https://u:secret@h/p.whl ==1")
    assert "secret" not in str(error)
    assert "https://***@h/p.whl" in str(error)


BASELINE = f"""\
-i https://h/simple
foo==1.0 --hash={H1}
requests[socks]>=2; python_version < "3.10"
-c c.txt
"""
C_TXT = {"c.txt": "urllib3<2\n"}


@pytest.mark.parametrize(
    "variant",
    [
        BASELINE.replace("foo==1.0", "# a comment\n\nfoo == 1.0  "),
        BASELINE.replace("-c c.txt", "  -c   c.txt  # pins"),
        BASELINE.replace("foo==1.0 ", "Foo==1.0 \\\n    "),
        BASELINE.replace('python_version < "3.10"', "python_version<'3.10'"),
        BASELINE.replace("requests[socks]>=2", "Requests[SOCKS] >= 2"),
        BASELINE.replace("-i ", "--index-url="),
        BASELINE + "\n\n# trailing\n",
    ],
)
def test_fingerprint_ignores_layout(variant: str) -> None:
    assert parse(variant, files=C_TXT).fingerprint() == parse(BASELINE, files=C_TXT).fingerprint()


@pytest.mark.parametrize(
    ("variant", "files"),
    [
        (BASELINE.replace("foo==1.0", "foo==1.1"), C_TXT),
        (BASELINE.replace("foo==1.0", "foo>=1.0"), C_TXT),
        (BASELINE.replace(H1, H2), C_TXT),
        (BASELINE.replace("[socks]", "[socks,security]"), C_TXT),
        (BASELINE.replace("3.10", "3.11"), C_TXT),
        (BASELINE + "bar\n", C_TXT),
        (BASELINE.replace("foo==1.0", "foo==1.0 --hash=" + "sha256:" + "c" * 64), C_TXT),
        (BASELINE.replace("https://h/simple", "https://other/simple"), C_TXT),
        (BASELINE + "--extra-index-url https://x/simple\n", C_TXT),
        (BASELINE + "--trusted-host h\n", C_TXT),
        (BASELINE + "--no-binary foo\n", C_TXT),
        (BASELINE + "--only-binary :all:\n", C_TXT),
        (BASELINE + "--prefer-binary\n", C_TXT),
        (BASELINE + "--pre\n", C_TXT),
        (BASELINE + "--no-index\n", C_TXT),
        (BASELINE + "--require-hashes\n", C_TXT),
        (BASELINE + "-f /wheels\n", C_TXT),
        (BASELINE, {"c.txt": "urllib3<3\n"}),
        (BASELINE, {"c.txt": ""}),
        (BASELINE.replace("-c c.txt", "-r c.txt"), C_TXT),  # constraint became a requirement
    ],
)
def test_fingerprint_changes_with_content(variant: str, files: dict[str, str]) -> None:
    assert parse(variant, files=files).fingerprint() != parse(BASELINE, files=C_TXT).fingerprint()


def test_fingerprint_is_sha256_hex() -> None:
    fingerprint = parse(BASELINE, files=C_TXT).fingerprint()
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0


# --- real files --------------------------------------------------------------------------------


def test_parse_requirements_reads_real_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "requirements.txt").write_bytes(
        b"\xef\xbb\xbf# with a BOM\nfoo==1\n-r sub/base.txt\n-f wheels\n"
    )
    (tmp_path / "sub" / "base.txt").write_text("Bar>=2\n-c pins.txt\n", encoding="utf-8")
    (tmp_path / "sub" / "pins.txt").write_text("bar<3\n", encoding="utf-8")
    path = tmp_path / "requirements.txt"
    result = parse_requirements(path, env={})
    assert specifiers(result) == ["foo==1", "bar>=2"]
    assert origins(result) == [f"{path}:2", f"{tmp_path / 'sub' / 'base.txt'}:1"]
    assert [c.origin for c in result.constraints] == [f"{tmp_path / 'sub' / 'pins.txt'}:1"]
    assert result.find_links == (str(tmp_path / "wheels"),)


def test_parse_requirements_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "main.txt").write_text("-r other.txt\n", encoding="utf-8")
    (tmp_path / "reqs" / "other.txt").write_text("x\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = parse_requirements(Path("reqs/main.txt"), env={})
    assert origins(result) == [str(Path("reqs/other.txt")) + ":1"]


def test_parse_requirements_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    with pytest.raises(RequirementsFileNotFoundError) as info:
        parse_requirements(path, env={})
    assert str(info.value) == f"requirements file {path} not found"
    assert info.value.hint is not None
    assert "-r PATH" in info.value.hint
    assert "[tool.nativebuild]" in info.value.hint


def test_parse_requirements_missing_include(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("foo\n\n-r nope.txt\n", encoding="utf-8")
    with pytest.raises(RequirementsFileNotFoundError) as info:
        parse_requirements(path, env={})
    expected = f"{path}:3: included requirements file {tmp_path / 'nope.txt'} not found"
    assert str(info.value) == expected


def test_parse_requirements_directory_include(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("-r .\n", encoding="utf-8")
    with pytest.raises(RequirementsFileNotFoundError, match="cannot read included"):
        parse_requirements(path, env={})


def test_parse_requirements_env_and_cycle(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("foo==${V}\n-r ${OTHER}\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("-r ./requirements.txt\n", encoding="utf-8")
    with pytest.raises(RequirementSyntaxError, match=r"b\.txt:1: include cycle"):
        parse_requirements(path, env={"V": "1", "OTHER": "b.txt"})


def test_parse_requirements_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(RequirementSyntaxError, match="not UTF-8"):
        parse_requirements(path, env={})


# --- properties --------------------------------------------------------------------------------

FRAGMENTS = [
    "foo", "Foo_Bar==1.0", "x[a,B]>=1; python_version<'3.9'", "p @ https://u:p@h/p.whl",
    "-r a.txt", "-c b.txt", "-r missing.txt", "-i https://h/s", "--extra-index-url=https://e",
    "--no-binary :all:", "--only-binary a,:none:", "--pre", "--prefer-binary", "--no-index",
    "--trusted-host h", "-f ./w", "--use-feature x", "-e .", "./local", "https://h/x.whl",
    f"--hash={H1}", f"--hash {H2}", "\\", "#", " # c", "${VAR}", "$", "'", '"', ";", "@", "=",
    "==", "[", "]", "--", "-", 'foo; os_name == "', "\\N", "\\d", "\x00", "--requirement",
    "\n", "\r\n", " ", "\t", "file:///x", "C:\\x",
]  # fmt: skip
INCLUDES = {"a.txt": "bar\n-r b.txt\n", "b.txt": "-c c.txt\n--pre\n", "c.txt": "bar<2\n"}
texts = st.one_of(
    st.text(),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=12).map("".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("\n".join),
)


@settings(max_examples=400, deadline=None)
@given(
    text=texts,
    env=st.dictionaries(
        st.sampled_from(["VAR", "X"]),
        st.sampled_from([" #x", " -x", "a\nb", "\\", "'", "1"]) | st.text(max_size=5),
    ),
)
def test_arbitrary_text_raises_only_requirement_errors(text: str, env: dict[str, str]) -> None:
    try:
        result = parse(text, files=INCLUDES, env=env)
    except (RequirementSyntaxError, RequirementsFileNotFoundError):
        return
    # What parses must also produce output, and pip's file must parse back to the same pins.
    assert len(result.fingerprint()) == 64
    replayed = parse(result.pip_requirements_text())
    assert [(r.name, r.specifier, r.hashes) for r in replayed.requirements] == [
        (r.name, r.specifier, r.hashes) for r in result.requirements
    ]
    assert (replayed.no_binary, replayed.only_binary) == (result.no_binary, result.only_binary)
