"""Lambda's deprecation schedule as data: each runtime's dates, where it stands on a given day,
and the warning that says so (pure: the day is passed in)."""

from __future__ import annotations

import dataclasses
import datetime
import time

import pytest

from nativebuild.targets import (
    NOTICE_DAYS,
    LifecycleStage,
    Runtime,
    deprecation_notices,
    get_runtime,
    lifecycle,
    runtimes,
    successor,
    utc_today,
)

D = datetime.date


def test_the_dates_are_those_of_aws_docs_december_2026() -> None:
    """sam-contract.md, "Lambda Python runtimes (AWS docs, December 2026)"."""
    table = {name: (r.deprecated, r.block_create, r.block_update) for name, r in runtimes().items()}
    assert table == {
        "python3.9": (D(2025, 12, 15), D(2026, 2, 3), D(2026, 3, 9)),
        "python3.10": (D(2026, 10, 31), D(2026, 11, 30), D(2027, 1, 15)),
        "python3.11": (D(2027, 6, 30), None, None),
        "python3.12": (D(2028, 10, 31), None, None),
        "python3.13": (D(2029, 6, 30), None, None),
        "python3.14": (D(2029, 6, 30), None, None),
    }


@pytest.mark.parametrize("runtime", list(runtimes().values()), ids=lambda r: r.name)
def test_blocks_come_after_the_deprecation_creation_before_updates(runtime: Runtime) -> None:
    if runtime.block_create is not None:
        assert runtime.block_create > runtime.deprecated
    if runtime.block_update is not None:
        assert runtime.block_update > (runtime.block_create or runtime.deprecated)


@pytest.mark.parametrize(
    ("today", "stage"),
    [
        (D(2025, 1, 1), LifecycleStage.SUPPORTED),
        (D(2025, 12, 15) - datetime.timedelta(days=NOTICE_DAYS + 1), LifecycleStage.SUPPORTED),
        (D(2025, 12, 15) - datetime.timedelta(days=NOTICE_DAYS), LifecycleStage.DEPRECATION_SOON),
        (D(2025, 12, 14), LifecycleStage.DEPRECATION_SOON),
        (D(2025, 12, 15), LifecycleStage.DEPRECATED),
        (D(2026, 2, 2), LifecycleStage.DEPRECATED),
        (D(2026, 2, 3), LifecycleStage.CREATE_BLOCKED),
        (D(2026, 3, 8), LifecycleStage.CREATE_BLOCKED),
        (D(2026, 3, 9), LifecycleStage.UPDATE_BLOCKED),
        (D(2030, 1, 1), LifecycleStage.UPDATE_BLOCKED),
    ],
)
def test_python39_stage_by_day(today: datetime.date, stage: LifecycleStage) -> None:
    notice = lifecycle(get_runtime("python3.9"), today)
    assert notice.stage is stage
    assert notice.warns is (stage is not LifecycleStage.SUPPORTED)


def test_a_deprecated_runtime_is_named_with_its_dates_and_where_to_go() -> None:
    notice = lifecycle(get_runtime("python3.9"), D(2026, 12, 6))
    assert notice.message == (
        "python3.9 is deprecated since 2025-12-15; Lambda blocks function creation from "
        "2026-02-03 and function updates from 2026-03-09. Build for python3.14 (supported "
        "until 2029-06-30)."
    )


def test_a_deprecation_within_the_notice_period_is_announced_with_the_days_left() -> None:
    notice = lifecycle(get_runtime("python3.11"), D(2027, 6, 20))
    assert notice.stage is LifecycleStage.DEPRECATION_SOON
    assert notice.message.startswith("python3.11 will be deprecated on 2027-06-30 (in 10 days)")
    assert "Lambda blocks" not in notice.message  # no block dates announced in the data


def test_a_runtime_with_only_an_update_block_names_that_one() -> None:
    runtime = dataclasses.replace(get_runtime("python3.10"), block_create=None)
    notice = lifecycle(runtime, D(2026, 12, 6))
    assert notice.stage is LifecycleStage.DEPRECATED
    assert "; Lambda blocks function updates from 2027-01-15." in notice.message
    assert "creation" not in notice.message


def test_a_supported_runtime_does_not_warn() -> None:
    notice = lifecycle(get_runtime("python3.13"), D(2026, 12, 6))
    assert notice.stage is LifecycleStage.SUPPORTED
    assert not notice.warns
    assert notice.message == "python3.13 is supported; Lambda deprecates it on 2029-06-30"


def test_the_successor_is_the_newest_python_supported_longest() -> None:
    assert successor().name == "python3.14"
    notice = lifecycle(get_runtime("python3.14"), D(2029, 6, 1))
    assert notice.stage is LifecycleStage.DEPRECATION_SOON
    assert "Build for" not in notice.message  # no newer runtime to suggest


def test_json_carries_iso_dates_and_the_stage() -> None:
    assert lifecycle(get_runtime("python3.10"), D(2026, 12, 6)).to_json() == {
        "runtime": "python3.10",
        "stage": "create-blocked",
        "deprecated": "2026-10-31",
        "block_create": "2026-11-30",
        "block_update": "2027-01-15",
        "message": (
            "python3.10 is deprecated since 2026-10-31; Lambda blocks function creation from "
            "2026-11-30 and function updates from 2027-01-15. Build for python3.14 (supported "
            "until 2029-06-30)."
        ),
    }


def test_a_deprecated_runtime_without_block_dates_says_so_and_reports_none() -> None:
    plain = dataclasses.replace(get_runtime("python3.9"), block_create=None, block_update=None)
    after = lifecycle(plain, plain.deprecated + datetime.timedelta(days=1))
    assert after.message.startswith(f"python3.9 is deprecated since {plain.deprecated}. Build for")
    as_json = after.to_json()
    assert (as_json["block_create"], as_json["block_update"]) == (None, None)
    assert as_json["deprecated"] == plain.deprecated.isoformat()


def test_deprecation_notices_warn_once_per_runtime_on_the_given_day() -> None:
    old = get_runtime("python3.9")
    names = ["python3.9", successor().name, "python3.9"]
    (notice,) = deprecation_notices(names, old.deprecated)
    assert (notice.runtime, notice.stage) == ("python3.9", LifecycleStage.DEPRECATED)
    long_before = old.deprecated - datetime.timedelta(days=10 * 365)
    assert deprecation_notices(names, long_before) == ()
    # Without a day: today's, in UTC.
    assert deprecation_notices(names) == deprecation_notices(names, utc_today())


@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Pacific/Kiritimati"])  # UTC-12, UTC+14
def test_today_is_the_utc_date_whatever_the_local_time_zone(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At any hour, one of the two zones is on another date than UTC.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert utc_today() == datetime.datetime.now(datetime.UTC).date()
    finally:
        monkeypatch.undo()
        time.tzset()
