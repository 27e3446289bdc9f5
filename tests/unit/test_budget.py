"""Sizes against Lambda's limits: per package, per function with its layers, zipped uploads."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pytest

from nativebuild.archive.budget import (
    DIRECT_UPLOAD_LIMIT,
    UNZIPPED_LIMIT,
    ExternalLayer,
    check_group,
    human,
    package_sizes,
    read_layer,
    render_table,
    zipped_warnings,
)
from nativebuild.archive.plan import ArchiveEntry, ArchivePlan, SourceFile, WheelMember
from nativebuild.errors import ArchiveError


def plan_of(sizes: dict[str, int], *, files_each: int = 1) -> ArchivePlan:
    """A plan whose packages ("name version", or "" for source) have the given sizes."""
    entries = []
    for owner, size in sizes.items():
        for i in range(files_each):
            path = f"{owner.split(' ')[0] or 'src'}/f{i}"
            source = (
                WheelMember(wheel=Path("x.whl"), member=path, rewrite_shebang=False)
                if owner
                else SourceFile(path=Path(path))
            )
            entries.append(
                ArchiveEntry(
                    path=path, mode=0o644, source=source, owner=owner, size=size // files_each
                )
            )
    return ArchivePlan(entries=tuple(sorted(entries, key=lambda e: e.path)), interpreter="/x")


def test_limits_are_lambdas() -> None:
    assert UNZIPPED_LIMIT == 250 * 1024 * 1024 == 262_144_000
    # The API refuses requests over 69,905,067 bytes: the base64 of 50 MiB of zip.
    assert math.ceil(DIRECT_UPLOAD_LIMIT * 4 / 3) == 69_905_067


def test_package_sizes_group_by_owner_largest_first() -> None:
    plan = plan_of({"numpy 2.0.1": 3000, "six 1.16.0": 10, "": 500}, files_each=2)
    sizes = package_sizes(plan, "f.zip", compressed_sizes=[1, 2, 3, 4, 5, 6])
    assert [(p.name, p.files, p.unzipped) for p in sizes] == [
        ("numpy 2.0.1", 2, 3000),
        ("your source", 2, 500),
        ("six 1.16.0", 2, 10),
    ]
    zipped = {p.name: p.zipped for p in sizes}
    assert sum(z or 0 for z in zipped.values()) == 21
    assert all(p.archive == "f.zip" for p in sizes)
    assert {p.zipped for p in package_sizes(plan, "f.zip")} == {None}


def test_under_the_limit_is_quiet() -> None:
    assert check_group([("f.zip", plan_of({"a 1": 1000}))], [], layers=0) == []


def test_near_the_limit_warns() -> None:
    (warning,) = check_group(
        [("f.zip", plan_of({"a 1": int(UNZIPPED_LIMIT * 0.95)}))], [], layers=0
    )
    assert "95%" in warning
    assert "f.zip" in warning


def test_over_the_limit_lists_the_largest_packages_across_function_and_layers() -> None:
    function = plan_of({"": 1_000_000, "tiny 1.0": 100})
    layer = plan_of({"pyarrow 15.0.0": 150_000_000, "pandas 2.2.0": 100_000_000})
    external = ExternalLayer(path=Path("/x/other-layer.zip"), unzipped=20_000_000, files=3)
    with pytest.raises(ArchiveError) as caught:
        check_group([("f.zip", function), ("deps.zip", layer)], [external], layers=1)
    message = str(caught.value)
    assert message.startswith("f.zip with deps.zip, other-layer.zip is 271,000,100 bytes")
    assert "over Lambda's limit of 262,144,000 bytes" in message
    assert "8,856,101 bytes too many" in message
    listing = message.split("Largest packages:\n")[1].splitlines()
    assert listing[0].split()[0:2] == ["pyarrow", "15.0.0"]
    assert "in deps.zip" in listing[0]
    assert listing[1].split()[0:2] == ["pandas", "2.2.0"]
    assert "other-layer.zip" in message
    (elsewhere,) = [line for line in listing if "other-layer.zip" in line]
    assert elsewhere.split() == [
        "(layer", "built", "elsewhere)", "19.1", "MiB", "3", "files", "in", "other-layer.zip"
    ]  # fmt: skip
    assert caught.value.hint is not None
    assert "--slim" in caught.value.hint


# Lambda: "Unzipped size must be smaller than 262144000 bytes": the limit itself is refused.
@pytest.mark.parametrize(
    ("total", "refused"),
    [(UNZIPPED_LIMIT - 1, False), (UNZIPPED_LIMIT, True), (UNZIPPED_LIMIT + 1, True)],
)
def test_both_sides_of_the_unzipped_limit(total: int, refused: bool) -> None:
    plans = [("f.zip", plan_of({"a 1": total}))]
    if not refused:
        (warning,) = check_group(plans, [], layers=0)  # 100% of the limit: a warning, no error
        assert f"{total:,} bytes unzipped" in warning
        return
    with pytest.raises(ArchiveError, match=f"{total:,} bytes unzipped") as caught:
        check_group(plans, [], layers=0)
    assert f"{total - UNZIPPED_LIMIT + 1:,} bytes too many" in str(caught.value)


def test_the_limit_counts_the_function_its_layers_and_external_layers_together() -> None:
    function = plan_of({"": 100})
    layer = plan_of({"numpy 2.0.1": UNZIPPED_LIMIT - 1000})
    external = ExternalLayer(path=Path("/x/other.zip"), unzipped=899, files=1)
    assert len(check_group([("f.zip", function), ("l.zip", layer)], [external], layers=1)) == 1
    one_more = ExternalLayer(path=Path("/x/other.zip"), unzipped=900, files=1)
    with pytest.raises(ArchiveError, match="262,144,000 bytes unzipped"):
        check_group([("f.zip", function), ("l.zip", layer)], [one_more], layers=1)


@pytest.mark.parametrize(
    ("total", "warned"),
    [(235_929_599, False), (235_929_600, True)],  # 90% of 262,144,000 is 235,929,600
)
def test_the_near_warning_starts_at_ninety_percent(total: int, warned: bool) -> None:
    warnings = check_group([("f.zip", plan_of({"a 1": total}))], [], layers=0)
    assert [("90%" in w and "f.zip" in w) for w in warnings] == ([True] if warned else [])


def test_long_listings_are_cut() -> None:
    plan = plan_of({f"p{i} 1.0": 20_000_000 for i in range(20)})
    with pytest.raises(ArchiveError, match=r"\.\.\. and 5 more"):
        check_group([("f.zip", plan)], [], layers=0)


def test_more_than_five_layers_is_refused() -> None:
    layers = [ExternalLayer(path=Path(f"/l{i}.zip"), unzipped=1, files=1) for i in range(5)]
    with pytest.raises(ArchiveError) as caught:
        check_group([("f.zip", plan_of({})), ("d.zip", plan_of({}))], layers, layers=1)
    assert str(caught.value) == (
        "f.zip with d.zip, l0.zip, l1.zip, l2.zip, l3.zip, l4.zip needs 6 layers; "
        "a function can use at most 5."
    )
    assert caught.value.hint == "Merge layers, or pass fewer --with-layer."


def test_five_layers_are_allowed_whether_built_here_or_elsewhere() -> None:
    four = [ExternalLayer(path=Path(f"/l{i}.zip"), unzipped=1, files=1) for i in range(4)]
    assert check_group([("f.zip", plan_of({})), ("d.zip", plan_of({}))], four, layers=1) == []
    five = [*four, ExternalLayer(path=Path("/l4.zip"), unzipped=1, files=1)]
    assert check_group([("f.zip", plan_of({}))], five, layers=0) == []
    with pytest.raises(ArchiveError, match="6 layers"):
        check_group([("f.zip", plan_of({})), ("d.zip", plan_of({}))], five, layers=1)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1000, None),
        (47_185_919, None),  # just under 90% of 52,428,800
        (47_185_920, "near the 50 MiB limit"),
        (DIRECT_UPLOAD_LIMIT - 1, "near the 50 MiB limit"),
        (DIRECT_UPLOAD_LIMIT, "near the 50 MiB limit"),  # at the limit is still allowed
        (DIRECT_UPLOAD_LIMIT + 1, "Deploy it through S3"),
    ],
)
def test_zipped_size_against_direct_upload(size: int, expected: str | None) -> None:
    warnings = zipped_warnings("f.zip", size)
    assert [expected in w for w in warnings] == ([] if expected is None else [True])


def test_the_direct_upload_warning_names_the_command_that_deploys_through_s3() -> None:
    (warning,) = zipped_warnings("f.zip", DIRECT_UPLOAD_LIMIT + 1)
    assert warning.startswith("f.zip is 52,428,801 bytes zipped: over the 52,428,800-byte")
    assert "`nativebuild publish --s3`" in warning


def test_read_layer_counts_files_and_unzipped_bytes(tmp_path: Path) -> None:
    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("python/a.py", b"x" * 1000)
        archive.writestr("python/sub/", b"")
        archive.writestr("lib/libz.so", b"y" * 24)
    assert read_layer(path) == ExternalLayer(path=path, unzipped=1024, files=2)
    (tmp_path / "bad.zip").write_bytes(b"nope")
    with pytest.raises(ArchiveError, match="Cannot read the layer") as caught:
        read_layer(tmp_path / "bad.zip")
    assert caught.value.hint == "Pass --with-layer the path of a layer .zip file."


def test_table_shows_each_package() -> None:
    plan = plan_of({"numpy 2.0.1": 3 * 1024 * 1024, "": 2048})
    lines = render_table("f.zip", 1234, package_sizes(plan, "f.zip", [1024 * 1024, 100]))
    assert lines[0] == "f.zip: 1,234 bytes zipped, 3,147,776 unzipped (1.2% of 262,144,000)"
    assert lines[1].split() == ["package", "files", "unzipped", "zipped"]
    assert lines[2].split() == ["numpy", "2.0.1", "1", "3.0", "MiB", "1.0", "MiB"]
    assert lines[3].split() == ["your", "source", "1", "2.0", "KiB", "100", "B"]
    assert len(lines) == 4


def test_table_before_writing_has_no_zipped_sizes() -> None:
    lines = render_table("f.zip", 0, package_sizes(plan_of({"six 1.16.0": 10}), "f.zip"))
    assert lines[2].split() == ["six", "1.16.0", "1", "10", "B", "-"]


def test_table_lists_fifteen_packages_and_counts_the_rest() -> None:
    fifteen = package_sizes(plan_of({f"p{i:02} 1.0": 100 + i for i in range(15)}), "f.zip")
    assert len(render_table("f.zip", 0, fifteen)) == 2 + 15
    seventeen = package_sizes(plan_of({f"p{i:02} 1.0": 100 + i for i in range(17)}), "f.zip")
    lines = render_table("f.zip", 0, seventeen)
    assert len(lines) == 2 + 15 + 1
    assert lines[-1] == "  ... and 2 more"


def test_compressed_sizes_must_match_the_entries() -> None:
    with pytest.raises(ValueError, match="zip"):
        package_sizes(plan_of({"a 1": 10, "b 1": 10}), "f.zip", compressed_sizes=[1])


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1024.0 KiB"),
        (1024 * 1024, "1.0 MiB"),
        (5 << 20, "5.0 MiB"),
        (262_144_000, "250.0 MiB"),
    ],
)
def test_human_sizes(size: int, text: str) -> None:
    assert human(size) == text


def test_a_single_archive_is_named_alone() -> None:
    with pytest.raises(ArchiveError) as caught:
        check_group([("f.zip", plan_of({"a 1": UNZIPPED_LIMIT}))], [], layers=0)
    assert str(caught.value).startswith("f.zip is 262,144,000 bytes unzipped (250.0 MiB): ")
    (warning,) = check_group([("f.zip", plan_of({"a 1": UNZIPPED_LIMIT - 1}))], [], layers=0)
    assert warning == (
        "f.zip is 262,143,999 bytes unzipped, 100% of Lambda's 262,144,000: "
        "little room for growth (see --slim)."
    )
    (pair,) = check_group(
        [("f.zip", plan_of({"a 1": UNZIPPED_LIMIT - 1})), ("l.zip", plan_of({}))], [], layers=1
    )
    assert pair.startswith("f.zip with l.zip is 262,143,999 bytes unzipped")


def test_a_listing_of_exactly_fifteen_packages_is_not_cut() -> None:
    plan = plan_of({f"p{i:02} 1.0": 20_000_000 for i in range(15)})
    with pytest.raises(ArchiveError) as caught:
        check_group([("f.zip", plan)], [], layers=0)
    listing = str(caught.value).split("Largest packages:\n")[1].splitlines()
    assert len(listing) == 15
    assert "more" not in listing[-1]


def test_the_table_shows_the_share_of_the_limit() -> None:
    half = plan_of({"a 1": UNZIPPED_LIMIT // 2})
    (first, *_) = render_table("f.zip", 1, package_sizes(half, "f.zip"))
    assert first.endswith("131,072,000 unzipped (50.0% of 262,144,000)")
