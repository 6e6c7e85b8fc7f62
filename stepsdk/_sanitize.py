"""Turn whatever the agent passed into JSON the database accepts, without losing the step.

Treatments (each tested in tests/test_tracker_sanitize.py):
- datetime/date/time -> ISO string; UUID, Path -> str; Enum -> its value; Decimal -> float when
  exact, else str; set/frozenset -> sorted list; tuple -> list; dataclass -> dict of fields;
  pydantic model -> model_dump(); exception -> {"type", "message"}; bytes -> "base64:<...>";
  anything else -> repr().
- NaN / Infinity / -Infinity (JSON and jsonb reject them) -> the strings "NaN", "Infinity", "-Infinity".
- Strings: NUL (rejected by Postgres text/jsonb) and lone surrogates -> U+FFFD; longer than the
  level's limit -> cut with the marker "…[truncated N chars]".
- Nesting deeper than the limit -> "…[max depth N reached]"; more items than the limit -> cut with
  "…[N more items]" (lists) or the key "…" (dicts); cycles -> "[circular reference]".
- A field whose JSON is larger than the limit -> {"_truncated": "…[field too large: N bytes, limit M]",
  "preview": first 1,000 chars of its JSON}.
- Keys that look like secrets (password, passwd, secret, token, api_key/apikey, authorization,
  cookie, session, private_key, credential, access_key, bearer; any case, any separators) have
  their non-numeric values replaced by "[REDACTED]". Numbers and booleans are kept
  (``max_tokens: 512`` is not a secret). The configured Supabase key, JWTs (eyJ….eyJ….…) and
  "Bearer <token>" inside any string are replaced by "[REDACTED]" too.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
import re
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from stepsdk._config import Limits

REDACTED = "[REDACTED]"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "authorization", "cookie",
                 "session", "privatekey", "credential", "accesskey", "bearer")
_KEY_NORMALIZE = re.compile(r"[^a-z0-9]")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_key_cache: dict[str, bool] = {}


def is_secret_key(key: str) -> bool:
    hit = _key_cache.get(key)
    if hit is None:
        norm = _KEY_NORMALIZE.sub("", key.lower())
        hit = any(word in norm for word in _SECRET_WORDS)
        if len(_key_cache) < 10_000:
            _key_cache[key] = hit
    return hit


class Sanitizer:
    """Applies the treatments above with one level's limits and the configured secrets."""

    def __init__(self, limits: Limits, secrets: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.secrets = tuple(s for s in secrets if s)
        self._chars = 0  # rough size of the value being sanitized (see field())
        self._items = 0
        self._lock = threading.Lock()

    # -- strings -------------------------------------------------------------------------
    def text(self, value: Any, max_chars: int | None = None) -> str | None:
        """A text column (thinking, error_message, stack_trace): str or None, cleaned and cut."""
        if value is None:
            return None
        if not isinstance(value, str):
            value = self._repr(value)
        return self._string(value, self.limits.max_string if max_chars is None else max_chars)

    def _string(self, value: str, max_chars: int) -> str:
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if not value.isascii() and _SURROGATE_RE.search(value):
            # Proper pairs become real characters, lone halves become U+FFFD.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "eyJ" in value:
            value = _JWT_RE.sub(REDACTED, value)
        if len(value) > 8 and ("earer" in value or "EARER" in value):
            value = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        if len(value) > max_chars:
            value = f"{value[:max_chars]}…[truncated {len(value) - max_chars} chars]"
        self._chars += len(value)
        return value

    # -- JSON values ---------------------------------------------------------------------
    def field(self, value: Any) -> Any:
        """A jsonb column value: sanitized, then capped in total JSON size."""
        with self._lock:  # the size counters are per call (the spill path runs on the caller thread)
            self._chars = self._items = 0
            clean = self.value(value)
            estimate = (self._chars + 16 * self._items) * 6
        # Encoding to measure costs more than sanitizing; only do it when the field could be
        # over the limit (a character takes at most 6 bytes in JSON: \uXXXX).
        if estimate > self.limits.max_field_bytes:
            encoded = json.dumps(clean, ensure_ascii=False, separators=(",", ":"))
            size = len(encoded.encode("utf-8", "replace"))
            if size > self.limits.max_field_bytes:
                return {"_truncated": f"…[field too large: {size} bytes, limit {self.limits.max_field_bytes}]",
                        "preview": encoded[:1000]}
        return clean

    def object_field(self, value: Any) -> dict[str, Any]:
        """Like `field` but always a JSON object (metadata columns check jsonb_typeof = object)."""
        clean = self.field(value if value is not None else {})
        return clean if isinstance(clean, dict) else {"value": clean}

    def value(self, value: Any) -> Any:
        return self._value(value, 0, set())

    def _value(self, value: Any, depth: int, seen: set[int]) -> Any:
        if value is None or value is True or value is False:
            return value
        kind = type(value)
        if kind is str:
            return self._string(value, self.limits.max_string)
        if kind is int:
            return value
        if kind is float:
            return value if math.isfinite(value) else _nonfinite(value)
        if depth >= self.limits.max_depth:
            return f"…[max depth {self.limits.max_depth} reached]"
        if isinstance(value, Mapping):
            return self._mapping(value, depth, seen)
        if isinstance(value, (list, tuple)):
            return self._sequence(value, depth, seen)
        if isinstance(value, (set, frozenset)):
            try:
                items = sorted(value)
            except TypeError:
                items = sorted(value, key=repr)
            return self._sequence(items, depth, seen)
        return self._scalar(value, depth, seen)

    def _scalar(self, value: Any, depth: int, seen: set[int]) -> Any:
        if isinstance(value, enum.Enum):
            return self._value(value.value, depth + 1, seen)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else _nonfinite(value)
        if isinstance(value, str):
            return self._string(str(value), self.limits.max_string)
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        if isinstance(value, (uuid.UUID, PurePath)):
            return str(value)
        if isinstance(value, Decimal):
            return _decimal(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._string("base64:" + base64.b64encode(bytes(value)).decode("ascii"), self.limits.max_string)
        if isinstance(value, BaseException):
            return {"type": type(value).__name__, "message": self.text(str(value))}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._guarded(value, depth, seen,
                                 lambda: {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        dump = getattr(value, "model_dump", None)
        if callable(dump) and not isinstance(value, type):
            return self._guarded(value, depth, seen, dump)
        return self._string(self._repr(value), self.limits.max_string)

    def _guarded(self, value: Any, depth: int, seen: set[int], to_dict: Any) -> Any:
        try:
            data = to_dict()
        except Exception:  # a broken __getattr__/model_dump must not lose the step
            return self._string(self._repr(value), self.limits.max_string)
        return self._value(data, depth + 1, seen)

    def _mapping(self, value: Mapping[Any, Any], depth: int, seen: set[int]) -> Any:
        if id(value) in seen:
            return "[circular reference]"
        seen.add(id(value))
        out: dict[str, Any] = {}
        limit = self.limits.max_items
        try:
            for i, (key, item) in enumerate(value.items()):
                if i >= limit:
                    out["…"] = f"[{len(value) - limit} more keys]"
                    break
                skey = key if type(key) is str else str(self._value(key, depth + 1, seen))
                skey = self._string(skey, 200)
                if is_secret_key(skey) and not isinstance(item, (int, float)) and item is not None:
                    out[skey] = REDACTED
                else:
                    out[skey] = self._value(item, depth + 1, seen)
        finally:
            seen.discard(id(value))
        return out

    def _sequence(self, value: Any, depth: int, seen: set[int]) -> list[Any]:
        if id(value) in seen:
            return ["[circular reference]"]
        seen.add(id(value))
        limit = self.limits.max_items
        try:
            out = [self._value(item, depth + 1, seen) for item in value[:limit]]
        finally:
            seen.discard(id(value))
        if len(value) > limit:
            out.append(f"…[{len(value) - limit} more items]")
        return out

    @staticmethod
    def _repr(value: Any) -> str:
        try:
            return repr(value)
        except Exception as exc:  # a raising __repr__ must not lose the step
            return f"<{type(value).__name__} object (repr failed: {type(exc).__name__})>"


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if value == value.to_integral_value() and abs(value) < 10**18:
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)
