"""Hostile and odd step data: every input gets a defined treatment, and the row is valid JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from stepsdk.config import LEVEL_LIMITS, Config
from stepsdk.model import Level
from stepsdk.recording.sanitize import REDACTED, Sanitizer, is_secret_key, marker

S = Sanitizer(LEVEL_LIMITS[Level.DETAILED], ("sb_secret_abcdefghijklmnop",))


def _strict_json(value: object) -> None:
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")  # raises if invalid


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model:  # pydantic-like
    def model_dump(self) -> dict:
        return {"name": "m", "token": "abc"}


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("boom")


def test_non_json_types_are_coerced() -> None:
    value = {
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "day": dt.date(2026, 1, 2),
        "raw": b"\x00\x01",
        "set": {3, 1, 2},
        "mixed": {1, "a"},
        "tuple": (1, 2),
        "dc": Point(1, 2),
        "model": Model(),
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": float("-inf"),
        "dec": Decimal("1.5"),
        "dec_big": Decimal("0.1234567890123456789"),
        "dec_int": Decimal("10"),
        "uuid": uuid.UUID(int=1),
        "enum": Color.RED,
        "path": Path("/tmp/x"),
        "exc": ValueError("bad"),
        "obj": object(),
        "bad": BadRepr(),
        7: "int key",
        "delta": dt.timedelta(seconds=2),
    }
    out = S.value(value)
    _strict_json(out)
    assert out["when"] == "2026-01-02T03:04:05+00:00" and out["day"] == "2026-01-02"
    assert out["raw"] == "base64:AAE="
    assert out["set"] == [1, 2, 3] and sorted(out["mixed"], key=str) == [1, "a"]
    assert out["tuple"] == [1, 2] and out["dc"] == {"x": 1, "y": 2}
    assert out["model"] == {"name": "m", "token": marker("token")}
    assert (out["nan"], out["inf"], out["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert out["dec"] == 1.5 and out["dec_big"] == "0.1234567890123456789" and out["dec_int"] == 10
    assert out["uuid"] == "00000000-0000-0000-0000-000000000001" and out["enum"] == "red"
    assert out["path"] == "/tmp/x" and out["exc"] == {"type": "ValueError", "message": "bad"}
    assert out["obj"].startswith("<object object at")
    assert "repr failed" in out["bad"] and out["7"] == "int key" and out["delta"] == 2.0


def test_huge_string_truncated_with_visible_marker() -> None:
    out = S.value({"big": "x" * 22_345})
    assert out["big"].startswith("x" * 10_000)
    assert out["big"].endswith("…[truncated 12345 chars]")


def test_deep_nesting_cut_with_marker() -> None:
    deep: dict = {}
    cur = deep
    for _ in range(100):
        cur["d"] = {}
        cur = cur["d"]
    out = S.value(deep)
    _strict_json(out)
    text = json.dumps(out, ensure_ascii=False)
    assert "…[max depth 20 reached]" in text and text.count('"d"') == 20


def test_cycles_and_long_lists() -> None:
    a: dict = {"n": 1}
    a["self"] = a
    lst: list = list(range(5000))
    out = S.value({"a": a, "l": lst})
    assert out["a"]["self"] == "[circular reference]"
    assert len(out["l"]) == 1001 and out["l"][-1] == "…[4000 more items]"


def test_nul_and_lone_surrogates_replaced() -> None:
    out = S.value({"s": "a\x00b", "lone": "x\ud800y", "pair": "\ud83d\ude00", "k\x00ey": 1})
    _strict_json(out)
    assert out["s"] == "a\ufffdb" and out["lone"] == "x\ufffdy" and out["pair"] == "😀"
    assert "k\ufffdey" in out


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWD",
        "client_secret",
        "access-token",
        "api_key",
        "apiKey",
        "Authorization",
        "cookie",
        "session_id",
        "private_key",
        "aws_credentials",
        "x-api-key",
        "Bearer",
    ],
)
def test_secret_keys_redacted(key: str) -> None:
    assert is_secret_key(key)
    out = S.value({"outer": {key: "hunter2", "fine": "visible"}})
    assert out["outer"][key].startswith(REDACTED[:-1] + ":") and out["outer"]["fine"] == "visible"


def test_numbers_under_secret_looking_keys_are_kept() -> None:
    assert S.value({"max_tokens": 512, "tokens_used": 3.5}) == {"max_tokens": 512, "tokens_used": 3.5}
    assert not is_secret_key("author") and not is_secret_key("title")


def test_configured_key_jwt_and_bearer_scrubbed_from_any_string() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    out = S.value({"log": f"key=sb_secret_abcdefghijklmnop jwt={jwt} hdr=Bearer abcdefghijkl123"})
    assert "sb_secret" not in out["log"] and "eyJ" not in out["log"] and "abcdefghijkl123" not in out["log"]
    assert out["log"].count(REDACTED[:-1]) == 3
    assert (
        "[REDACTED:configured]" in out["log"]
        and "[REDACTED:jwt]" in out["log"]
        and "Bearer [REDACTED:bearer]" in out["log"]
    )


def test_field_too_large_replaced_by_preview() -> None:
    small = Sanitizer(LEVEL_LIMITS[Level.BASIC])
    out = small.field({f"k{i}": "v" * 900 for i in range(50)})
    assert out["_truncated"].startswith("…[field too large:") and len(out["preview"]) == 1000


def test_object_field_wraps_non_objects() -> None:
    assert S.object_field([1, 2]) == {"value": [1, 2]}
    assert S.object_field(None) == {}


def test_text_columns() -> None:
    assert S.text(None) is None
    assert S.text(123) == "123"
    assert S.text("a" * 30, 10) == "a" * 10 + "…[truncated 20 chars]"


def test_config_repr_hides_key_and_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://localhost:1")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "very-secret-key-value")
    monkeypatch.setenv("STEPSDK_LEVEL", "basic")
    cfg = Config.resolve()
    assert cfg.remote and cfg.level is Level.BASIC and cfg.limits.max_stack == 0
    assert "very-secret" not in repr(cfg)
    assert not Config.resolve(supabase_url="", supabase_key="").remote
    with pytest.raises(ValueError, match="BASIC, DETAILED or FULL"):
        Config.resolve(level="LOUD")
    with pytest.raises(ValueError, match="http"):
        Config.resolve(supabase_url="ftp://x")
    with pytest.raises(TypeError):
        Config.resolve(bogus=1)


def test_size_limits_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPSDK_MAX_STRING", "500")
    cfg = Config.resolve(supabase_url="", supabase_key="", max_field_bytes=2048)
    assert cfg.limits.max_string == 500 and cfg.limits.max_field_bytes == 2048
    out = Sanitizer(cfg.limits).field({"s": "y" * 800})
    assert out["s"].endswith("…[truncated 300 chars]")
    monkeypatch.setenv("STEPSDK_MAX_STRING", "lots")
    with pytest.raises(ValueError, match="STEPSDK_MAX_STRING must be an integer"):
        Config.resolve()
    with pytest.raises(ValueError, match="between"):
        Config.resolve(max_field_bytes=5, max_string=1000)
