"""A coarse category for a failed step's error: what a person filters on first.

`categorize(error_type, error_message, http_status)` looks at the exception's class name, its
message and an HTTP status (when the step was an HTTP call) and answers one of `CATEGORIES`
(the `task_steps.error_category` check constraint), or None for a step without an error.
"""

from __future__ import annotations

import re

from stepsdk.schema import ERROR_CATEGORIES

CATEGORIES = ERROR_CATEGORIES

# (category, pattern over "<error_type> <error_message>"), first match wins.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rate_limit", re.compile(r"rate.?limit|too many requests|\b429\b|quota exceeded|throttl", re.I)),
    ("timeout", re.compile(r"timeout|timed?.?out|deadline exceeded|\b408\b|\b504\b", re.I)),
    (
        "auth",
        re.compile(
            r"permission|forbidden|unauthori[sz]ed|\bauth|access denied|not allowed|"
            r"invalid (api )?key|\b401\b|\b403\b",
            re.I,
        ),
    ),
    (
        "connection",
        re.compile(
            r"connect|network|unreachable|refused|reset by peer|broken pipe|dns|"
            r"name resolution|remote ?protocol|ssl|\b50[23]\b",
            re.I,
        ),
    ),
    (
        "device",
        re.compile(
            r"\badb\b|device|hdc|emulator|no element|element not found|screen|"
            r"uiautomator|tap|swipe",
            re.I,
        ),
    ),
    (
        "model_output",
        re.compile(
            r"json ?decode|parse|unparsable|could not understand|model output|"
            r"invalid action|unknown action|malformed",
            re.I,
        ),
    ),
    (
        "validation",
        re.compile(r"validation|invalid|value ?error|type ?error|assert|schema|\b4(00|22)\b", re.I),
    ),
)


def categorize(
    error_type: str | None, error_message: str | None, http_status: int | None = None
) -> str | None:
    """The category of an error, or None when there is none (no type, message nor failing status)."""
    if http_status is not None:
        if http_status == 429:
            return "rate_limit"
        if http_status in (401, 403, 407):
            return "auth"
        if http_status in (408, 504):
            return "timeout"
        if http_status in (502, 503):
            return "connection"
        if http_status in (400, 404, 409, 410, 413, 415, 422):
            return "validation"
    if not error_type and not error_message:
        return "other" if http_status is not None and http_status >= 400 else None
    text = f"{error_type or ''} {(error_message or '')[:2000]}"
    for category, pattern in _RULES:
        if pattern.search(text):
            return category
    return "other"
