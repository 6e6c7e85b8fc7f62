"""Turn whatever the agent passed into JSON the database accepts, without losing the step.

Treatments (each tested in tests/recording/test_tracker_sanitize.py):
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
- Secrets, by one rule set (``RULES``, used by the tracker, the integrations and import), each
  replaced by a marker naming the rule, ``[REDACTED:<rule>]``:
  * names: a key whose words (split on separators, camelCase and digits; plural "s" dropped) or
    two neighbouring words joined include a secret word (password, pwd, pass, passphrase, secret,
    token, auth, otp, pin, cvv, signature, jwt, cookie, session, credential, private key, api key,
    ...) has its value replaced, whatever it is (``author``, ``tokenizer``, ``sort_key`` survive).
    Numbers and booleans are kept except under PIN-like names (``max_tokens: 512`` is not a
    secret, ``pin: 1234`` is).
  * values, inside any string: the configured Supabase key, JWTs, ``Bearer``/``Basic``
    authorization values, PEM private key blocks, passwords in URLs and well-known API key
    shapes (AWS, GitHub, Slack, Stripe, OpenAI/Anthropic, Google, Supabase).
  Users add names and patterns with :func:`add_rules` (``stepsdk.add_redaction_rules``) or the
  environment: ``STEPSDK_REDACT_NAMES`` (comma-separated words) and ``STEPSDK_REDACT_PATTERNS``
  (a JSON object ``{"rule": "regex"}`` or a JSON list of regexes).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import logging
import math
import os
import re
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from stepsdk.config import Limits

REDACTED = "[REDACTED]"  # the prefix of every marker: [REDACTED:<rule>]
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
log = logging.getLogger("stepsdk")


def marker(rule: str) -> str:
    return f"[REDACTED:{rule}]"


# Words that make a name secret (matched against each word of the name and each pair of
# neighbouring words joined, so "private_key"/"privateKey"/"privatekey" all match).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "passcode",
        "secret",
        "token",
        "auth",
        "otp",
        "totp",
        "mfa",
        "pin",
        "pincode",
        "cvv",
        "cvc",
        "ssn",
        "sig",
        "signature",
        "jwt",
        "cookie",
        "session",
        "sessionid",
        "credential",
        "bearer",
        "authorization",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "clientsecret",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "csrftoken",
        "xsrftoken",
        "apitoken",
    }
)
# Parts that make a single run of letters secret when they appear inside it ("xapikey", "userpassword").
SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "clientsecret",
    "authorization",
    "credential",
    "accesstoken",
    "refreshtoken",
    "authtoken",
)
# A name that is only "key" ("?key=", "x-key") is a secret; "sort_key"/"primary_key" are not.
SECRET_EXACT = frozenset({"key", "xkey"})
# Rules whose numbers are secrets too (a PIN or an OTP is a number; a token count is not).
NUMERIC_SECRETS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passcode",
        "pin",
        "pincode",
        "otp",
        "totp",
        "cvv",
        "cvc",
        "ssn",
        "mfa",
    }
)

_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORDS = re.compile(r"[a-z]+")


def name_words(name: str) -> list[str]:
    """``"userPwd2-Hash"`` -> ``["user", "pwd", "hash"]``: camelCase, separators and digits split."""
    words = _WORDS.findall(_CAMEL_1.sub(r"\1 \2", _CAMEL_2.sub(r"\1 \2", name)).lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


def _basic_value(match: re.Match[str]) -> str:
    """``Basic <base64 of user:password>``: only when it decodes to something with a colon
    (so "basic information" stays)."""
    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except (ValueError, TypeError):
        return match.group(0)
    if b":" not in decoded:
        return match.group(0)
    return f"{match.group(1)} {marker('basic_auth')}"


# (rule, regex, replacement: None = the rule's marker, or a function of the match, triggers: the
# regex only runs when one of these is in the lower-cased string: most strings skip every rule)
_VALUE_RULES: list[tuple[str, str, Any, tuple[str, ...]]] = [
    (
        "private_key",
        r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)",
        None,
        ("-----begin",),
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", None, ("eyj",)),
    (
        "bearer",
        r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
        lambda m: f"{m.group(1)} {marker('bearer')}",
        ("bearer",),
    ),
    ("basic_auth", r"(?i)\b(basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])", _basic_value, ("basic",)),
    (
        "url_password",
        r"(?i)\b([a-z][a-z0-9+.-]{1,20}://[^/\s:@]{1,200}):[^/\s@]{1,200}@",
        lambda m: f"{m.group(1)}:{marker('url_password')}@",
        ("://",),
    ),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", None, ("akia", "asia")),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        None,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", None, ("xox",)),
    ("stripe_key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}", None, ("k_live_", "k_test_")),
    ("api_key", r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}", None, ("sk-",)),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", None, ("aiza",)),
    (
        "supabase_key",
        r"\bsb_(?:secret|publishable)_[A-Za-z0-9_-]{10,}",
        None,
        ("sb_secret_", "sb_publishable_"),
    ),
]


class RuleSet:
    """The one set of redaction rules: secret names and secret value shapes."""

    def __init__(self) -> None:
        self.words = set(SECRET_WORDS)
        self.parts = list(SECRET_PARTS)
        self.value_rules: list[tuple[str, re.Pattern[str], Any, tuple[str, ...]]] = []
        self._triggers: tuple[str, ...] = ()  # every rule's triggers, lower case
        self._always = False  # a rule without triggers (user patterns) runs on every string
        for rule, pattern, repl, triggers in _VALUE_RULES:
            self.add_pattern(rule, pattern, repl, triggers)
        self._cache: dict[str, str | None] = {}

    def add_pattern(self, rule: str, pattern: str, repl: Any = None, triggers: tuple[str, ...] = ()) -> None:
        """``triggers`` (lower case): run only when one is in the string; () = always run."""
        compiled = re.compile(pattern, re.DOTALL if rule == "private_key" else 0)
        self.value_rules.append((rule, compiled, repl if repl is not None else marker(rule), triggers))
        self._always = self._always or not triggers
        self._triggers = tuple(sorted({t for _r, _c, _p, ts in self.value_rules for t in ts}))

    def add_names(self, names: Any) -> None:
        for name in names:
            joined = "".join(name_words(str(name)))
            if joined:
                self.words.add(joined)
                if len(joined) >= 5:  # long enough to look for inside a run of letters too
                    self.parts.append(joined)
        self._cache = {}

    def name_rule(self, name: str) -> str | None:
        """The rule a key name matches (the secret word), or None."""
        hit = self._cache.get(name, "")
        if hit != "":
            return hit
        words = name_words(name)
        found: str | None = None
        if "".join(words) in SECRET_EXACT:
            found = "key"
        for i, word in enumerate(words):
            if found:
                break
            if word in self.words:
                found = word
            elif i + 1 < len(words) and word + words[i + 1] in self.words:
                found = word + words[i + 1]
            else:
                found = next((p for p in self.parts if p in word), None)
        if len(self._cache) < 10_000:
            self._cache[name] = found
        return found

    def scrub(self, value: str, secrets: tuple[str, ...] = ()) -> str:
        """``value`` with configured secrets and secret-shaped values replaced by markers."""
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, marker("configured"))
        low = value.lower()
        if not self._always:
            for trigger in self._triggers:  # ~20 substring scans in C: cheaper than one regex
                if trigger in low:
                    break
            else:
                return value  # the common case: nothing that any rule looks for
        for _rule, regex, repl, triggers in self.value_rules:
            if not triggers or any(t in low for t in triggers):
                value = regex.sub(repl, value)
        return value


RULES = RuleSet()


def add_rules(names: Any = (), patterns: Mapping[str, str] | Any = ()) -> None:
    """Add secret names (words, matched like the built-in ones) and value patterns (regexes; a
    mapping names each rule for its marker, a list calls them ``custom``) to the one rule set."""
    if isinstance(names, str):
        names = [names]
    RULES.add_names(names)
    items = patterns.items() if isinstance(patterns, Mapping) else (("custom", p) for p in patterns)
    for rule, pattern in items:
        RULES.add_pattern(re.sub(r"[^A-Za-z0-9_.-]", "_", str(rule))[:40] or "custom", pattern)


def _rules_from_env(env: Mapping[str, str]) -> None:
    names = env.get("STEPSDK_REDACT_NAMES")
    if names:
        add_rules([n.strip() for n in names.split(",") if n.strip()])
    raw = env.get("STEPSDK_REDACT_PATTERNS")
    if raw:
        try:
            patterns = json.loads(raw)
            if not isinstance(patterns, (dict, list)):
                raise ValueError("a JSON object or list")
            add_rules(patterns=patterns)
        except (ValueError, re.error) as exc:
            log.warning(
                "stepsdk: STEPSDK_REDACT_PATTERNS ignored: %s (expected a JSON object "
                '{"rule": "regex"} or list of regexes)',
                type(exc).__name__,
            )


_rules_from_env(os.environ)


def is_secret_key(key: str) -> bool:
    return RULES.name_rule(key) is not None


def secret_name_rule(key: str) -> str | None:
    return RULES.name_rule(key)


def hidden_value(name: str, item: Any) -> str | None:
    """The marker replacing ``item`` stored under ``name``, or None to keep it: None and booleans
    are kept, and numbers unless the name is PIN-like (``max_tokens: 512`` stays)."""
    rule = RULES.name_rule(name)
    if rule is None or item is None or isinstance(item, bool):
        return None
    if isinstance(item, (int, float)) and rule not in NUMERIC_SECRETS:
        return None
    return marker(rule)


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
        if len(value) >= 8:
            value = RULES.scrub(value, self.secrets)
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
                return {
                    "_truncated": f"…[field too large: {size} bytes, limit {self.limits.max_field_bytes}]",
                    "preview": encoded[:1000],
                }
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
            return self._string(
                "base64:" + base64.b64encode(bytes(value)).decode("ascii"), self.limits.max_string
            )
        if isinstance(value, BaseException):
            return {"type": type(value).__name__, "message": self.text(str(value))}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._guarded(
                value,
                depth,
                seen,
                lambda: {f.name: getattr(value, f.name) for f in dataclasses.fields(value)},
            )
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
                hidden = hidden_value(skey, item)
                if hidden is not None:
                    out[skey] = hidden
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
