"""Token usage from OpenAI-compatible model replies, for ``record_step(usage=...)``.

OpenAI-style replies carry ``"usage": {"prompt_tokens", "completion_tokens", "total_tokens", ...}``
(a chat completion's JSON body, or the last chunk of a stream when the server sends one). We keep
the three counters when they are integers >= 0 and ignore the rest (``*_tokens_details``...);
anything else is no usage, never an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
TAIL_BYTES = 16_384  # a reply's usage sits at its end: this much of the tail is kept to find it
_USAGE_KEY = re.compile(rb'"usage"\s*:\s*\{')
_DECODER = json.JSONDecoder()


def usage_from(value: Any) -> dict[str, int] | None:
    """The three counters of a usage mapping or object (an ``openai`` ``CompletionUsage``), or None."""
    if value is None:
        return None
    get = value.get if isinstance(value, Mapping) else lambda k: getattr(value, k, None)
    out: dict[str, int] = {}
    for key in KEYS:
        v = get(key)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53:
            out[key] = v
    return out or None


def usage_in_bytes(data: bytes) -> dict[str, int] | None:
    """The last ``"usage": {...}`` object found in a JSON body or an SSE stream (or its tail)."""
    for match in reversed(list(_USAGE_KEY.finditer(data))):
        start = match.end() - 1
        try:
            obj, _ = _DECODER.raw_decode(data[start:].decode("utf-8", "replace"))
        except ValueError:
            continue
        usage = usage_from(obj) if isinstance(obj, dict) else None
        if usage:
            return usage
    return None
