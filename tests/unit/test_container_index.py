"""What a container gets of local sources and of the netrc: files read-only, nothing more."""

from __future__ import annotations

from pathlib import Path

from nativebuild.index.containers import (
    ContainerLinks,
    container_index,
    container_links,
    folder_files,
    index_files,
    listing,
    netrc_for,
)
from nativebuild.index.pip_config import NETRC_IN_CONTAINER, IndexSettings
from tests.wheelfactory import make_tree


def test_a_find_links_folder_offers_its_distributions_only(tmp_path: Path) -> None:
    folder = make_tree(
        tmp_path / "wheels",
        {"a-1.0-py3-none-any.whl": "w", "b-2.0.tar.gz": "s", "c-1.zip": "z", ".env": "SECRET=1",
         "notes.txt": "n", ".hidden-1.0.tar.gz": "h", "sub/d-1.0.tar.gz": "nested"},
    )  # fmt: skip
    assert [p.name for p in folder_files(folder)] == [
        "a-1.0-py3-none-any.whl", "b-2.0.tar.gz", "c-1.zip",
    ]  # fmt: skip
    assert listing(folder) == ["a-1.0-py3-none-any.whl:1", "b-2.0.tar.gz:1", "c-1.zip:1"]
    assert folder_files(tmp_path / "missing") == []


def test_a_file_index_offers_the_files_its_pages_link_to(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "files/six-1.16.0-py2.py3-none-any.whl": "w",
            "files/docopt-0.6.2.tar.gz": "s",
            "simple/six/index.html": '<a href="../../files/six-1.16.0-py2.py3-none-any.whl#sha256=ab">six</a>'
            '<a href="https://elsewhere.example/six-1.0.tar.gz">remote</a>'
            '<a href="../../files/gone-1.0.tar.gz">missing</a>',
            "simple/docopt/index.html": f'<a href="{(tmp_path / "files" / "docopt-0.6.2.tar.gz").as_uri()}">d</a>',
            "simple/index.html": '<a href="six/">six</a>',
        },
    )
    found = index_files((tmp_path / "simple").as_uri())
    assert sorted(p.name for p in found) == [
        "docopt-0.6.2.tar.gz",
        "six-1.16.0-py2.py3-none-any.whl",
    ]


def test_container_links_give_each_source_its_folder_and_map_back(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"a-1.0-py3-none-any.whl": "w"})
    two = make_tree(tmp_path / "two", {"b-2.0.tar.gz": "s"})
    index = IndexSettings(find_links=(str(one), "https://links.example/", two.as_uri()))
    links = container_links(index)
    assert links.folders == ("/nativebuild/links/0", "/nativebuild/links/1")
    assert links.files == (
        (one / "a-1.0-py3-none-any.whl", "/nativebuild/links/0/a-1.0-py3-none-any.whl"),
        (two / "b-2.0.tar.gz", "/nativebuild/links/1/b-2.0.tar.gz"),
    )
    assert (
        links.host_url("file:///nativebuild/links/1/b-2.0.tar.gz")
        == (two / "b-2.0.tar.gz").as_uri()
    )
    assert links.host_url("https://files.example/x.whl") == "https://files.example/x.whl"
    assert ContainerLinks().folders == ()


NETRC = """\
machine pypi.example.com login me password index-pass
machine github.com login me password ghp_s3cr3t
default login anyone password d3fault
"""


def test_a_container_netrc_holds_the_index_hosts_only(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(NETRC)
    text = netrc_for(netrc, frozenset({"pypi.example.com", "other.example"}))
    assert text == "machine pypi.example.com login me password index-pass\n"
    assert netrc_for(netrc, frozenset({"nothing.example"})) is None
    assert netrc_for(tmp_path / "missing", frozenset({"pypi.example.com"})) is None


def test_container_index_mounts_a_trimmed_netrc_and_removes_it_afterwards(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(NETRC)
    folder = make_tree(tmp_path / "wheels", {"a-1.0-py3-none-any.whl": "w"})
    index = IndexSettings(
        index_url="https://pypi.example.com/simple", netrc=netrc, find_links=(str(folder),)
    )
    with container_index(index) as view:
        files = {target: source for source, target in view.files}
        trimmed = files[NETRC_IN_CONTAINER]
        assert trimmed != netrc
        assert "ghp_s3cr3t" not in trimmed.read_text()
        assert "d3fault" not in trimmed.read_text()
        assert "index-pass" in trimmed.read_text()
        assert trimmed.stat().st_mode & 0o077 == 0
        assert (
            files["/nativebuild/links/0/a-1.0-py3-none-any.whl"]
            == folder / "a-1.0-py3-none-any.whl"
        )
        assert view.environment["NETRC"] == NETRC_IN_CONTAINER
        assert view.environment["PIP_FIND_LINKS"] == "/nativebuild/links/0"
    assert not trimmed.exists()
    # No machine of the netrc is an index host: no netrc at all.
    with container_index(
        IndexSettings(index_url="https://elsewhere.example/simple", netrc=netrc)
    ) as view:
        assert NETRC_IN_CONTAINER not in {target for _, target in view.files}
        assert "NETRC" not in view.environment
