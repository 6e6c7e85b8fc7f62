"""stepsdk/schema.py: the facts of the schema, once, agreeing with the SQL of supabase/migrations and
with the public enums; the one timestamp rule (naive means UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from stepsdk import StepType, TaskStatus, schema

MIGRATIONS = Path(__file__).resolve().parents[1] / "supabase" / "migrations"


def _sql() -> str:
    return "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))


def _check_values(column: str) -> tuple[str, ...]:
    match = re.search(rf"{column}\s+in\s*\(([^)]*)\)", _sql(), re.S)
    assert match, column
    return tuple(re.findall(r"'([^']*)'", match.group(1)))


def test_statuses_step_types_and_categories_are_the_check_constraints() -> None:
    assert _check_values("status") == schema.TASK_STATUSES == tuple(s.value for s in TaskStatus)
    assert _check_values("step_type") == schema.STEP_TYPES == tuple(t.value for t in StepType)
    assert _check_values("error_category") == schema.ERROR_CATEGORIES


def test_limits_and_bucket_are_the_migrations() -> None:
    sql = _sql()
    assert f"char_length(task_id) between 1 and {schema.MAX_TASK_ID}" in sql
    assert f"char_length(title) <= {schema.MAX_TITLE}" in sql
    assert f"values ('{schema.BUCKET}', '{schema.BUCKET}', false" in sql


def test_storage_path_rule() -> None:
    sha = "ab" + "c" * 62
    assert schema.storage_path(sha) == f"ab/{sha}.webp"
    assert schema.storage_path(sha, schema.ENCRYPTED_SUFFIX) == f"ab/{sha}.enc"
    assert schema.STORAGE_PATH_RE.match(schema.storage_path(sha))
    assert schema.STORAGE_PATH_RE.match(schema.storage_path(sha, ".enc"))
    for bad in (f"ab/{sha}.png", f"../{sha}.webp", f"AB/{sha.upper()}.webp", f"ab/{sha[:-1]}.webp"):
        assert not schema.STORAGE_PATH_RE.match(bad), bad


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T10:00:00", datetime(2026, 11, 30, 10, tzinfo=UTC)),  # naive means UTC
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
        ("2026-11-30T10:00:00Z", datetime(2026, 11, 30, 10, tzinfo=UTC)),
        ("2026-11-30T12:00:00+02:00", datetime(2026, 11, 30, 10, tzinfo=UTC)),
        (" 2026-11-30T10:00:00.123456+00:00 ", datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_naive_is_utc(text: str, expected: datetime) -> None:
    parsed = schema.parse_timestamp(text)
    assert parsed == expected and parsed is not None and parsed.tzinfo is not None


def test_parse_timestamp_keeps_the_offset_and_rejects_junk() -> None:
    parsed = schema.parse_timestamp("2026-11-30T12:00:00+02:00")
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=2)
    assert schema.parse_timestamp(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    tz = timezone(timedelta(hours=-5))
    assert schema.parse_timestamp(datetime(2026, 1, 1, tzinfo=tz)).utcoffset() == timedelta(hours=-5)  # type: ignore[union-attr]
    for junk in (None, "", "  ", "yesterday", "2026-13-01", 1_700_000_000, b"2026-01-01"):
        assert schema.parse_timestamp(junk) is None, junk


def test_parse_timestamp_of_an_instant_outside_pythons_utc_range_is_none() -> None:
    """Year 1 at +01:00 is year 0 in UTC, year 9999 at -05:00 is year 10000: no UTC day or epoch
    for the index (it raised OverflowError there); the edges themselves still parse."""
    for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        assert schema.parse_timestamp(text) is None, text
    assert schema.parse_timestamp("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert schema.parse_timestamp("9999-12-31T23:59:59") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_has_offset_is_the_export_formats_requirement() -> None:
    assert schema.has_offset("2026-11-30T10:00:00+00:00") and schema.has_offset("2026-11-30T10:00:00Z")
    assert not schema.has_offset("2026-11-30T10:00:00") and not schema.has_offset("junk")
    assert not schema.has_offset(None)


def test_every_reader_uses_the_one_rule() -> None:
    from stepsdk.ops import stats
    from stepsdk.store import export_format, index

    naive = "2026-11-30T10:00:00"
    assert (
        stats.parse_ts(naive)
        == index.parse_ts(naive)
        == export_format.parse_timestamp(naive)
        == (datetime(2026, 11, 30, 10, tzinfo=UTC))
    )
