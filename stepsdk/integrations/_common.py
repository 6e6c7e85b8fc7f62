"""Helpers shared by the integrations: the hook guard, the tracker argument, and value summaries.

The tracker itself coerces and redacts step data (``stepsdk.recording.sanitize``); the helpers here only
turn foreign objects (function arguments, HTTP headers, URLs) into small, JSON-friendly values
before they reach it, so that a huge or exotic argument never costs the agent more than a repr.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stepsdk.recording.sanitize import RULES, hidden_value, marker

_log = logging.getLogger("stepsdk.integrations")

# A name is secret when the one rule set says so (``stepsdk.recording.sanitize.RULES``, shared with the
# tracker and import); its marker names the rule: ``[REDACTED:<rule>]``.
# Query parameters that carry secrets although their names look harmless (OAuth codes).
_SECRET_QUERY_NAMES = frozenset({"code"})  # ("x-amz-credential" is caught by "credential")

MAX_STRING = 2_000
MAX_ITEMS = 50
MAX_DEPTH = 4


class guarded:  # lower-case: used like a function, ``with guarded("what"):``
    """Run a recording block; any failure is logged and swallowed so it never reaches the agent.

    A class, not ``@contextmanager``: it runs several times per agent step, and this is ~10x cheaper.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False  # KeyboardInterrupt/SystemExit are not recording failures: let them through
        # the agent comes first: a recording failure must never change its behaviour
        _log.warning(
            "stepsdk: recording %s failed; the agent is unaffected", self.what, exc_info=(exc_type, exc, tb)
        )
        return True


TrackerSource = Any  # a StepTracker, or a zero-argument callable returning one (or None: do not record)


def check_tracker_source(source: TrackerSource, where: str) -> None:
    if not (hasattr(source, "record_step") or callable(source)):
        raise TypeError(
            f"{where}: tracker must be a StepTracker or a callable returning one, got {type(source).__name__}"
        )


def resolve_tracker(source: TrackerSource) -> Any:
    return source if hasattr(source, "record_step") else source()


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and RULES.name_rule(name) is not None


def redacted_name(name: str) -> str | None:
    """The marker for a secret name (``[REDACTED:pwd]``), or None when the name is not secret."""
    rule = RULES.name_rule(name)
    return None if rule is None else marker(rule)


def truncate(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} chars]"


_SCALARS = frozenset({type(None), bool, int, float})


def summarize(value: Any, *, depth: int = 0, limit: int = MAX_STRING) -> Any:
    """A JSON-friendly, size-bounded, secret-redacted copy of ``value``."""
    kind = type(value)
    if kind in _SCALARS:  # exact-type checks first: this runs on the agent's thread
        return value
    if kind is str:
        return value if len(value) <= limit else truncate(value, limit)
    if kind is dict and depth < MAX_DEPTH:
        return _summarize_mapping(value, depth, limit)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return truncate(str(value), limit)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": value.nbytes if isinstance(value, memoryview) else len(value)}
    if depth >= MAX_DEPTH:
        return truncate(_safe_repr(value), 200)
    if isinstance(value, Mapping):
        return _summarize_mapping(value, depth, limit)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        out = [summarize(v, depth=depth + 1, limit=limit) for v in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            out.append(f"… [{len(items) - MAX_ITEMS} more items]")
        return out
    return truncate(_safe_repr(value), limit)


def _summarize_mapping(value: Mapping[Any, Any], depth: int, limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if len(out) >= MAX_ITEMS:
            out["…"] = f"[{len(value) - MAX_ITEMS} more keys]"
            break
        name = key if type(key) is str else str(key)
        hidden = hidden_value(name, item)
        out[name] = hidden if hidden is not None else summarize(item, depth=depth + 1, limit=limit)
    return out


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not break recording
        return f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"


def redact_url(url: str) -> str:
    """The URL with user info and secret-looking query values replaced by ``[REDACTED:<rule>]``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{marker('url_credentials')}@{netloc.rsplit('@', 1)[1]}"
    if not parts.query:
        return urlunsplit(parts._replace(netloc=netloc))
    pairs = [
        (k, redacted_name(k) or (marker(k.lower()) if k.lower() in _SECRET_QUERY_NAMES else v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(pairs, safe="[]:")))
