"""The facts of the stored schema that the Python side needs, once (the SQL is in supabase/migrations).

Statuses, step types and error categories (check constraints of ``tasks`` / ``task_steps``), the
length limits the schema checks, the Storage bucket, the content-addressed object key of a
screenshot, and the one rule for reading a stored timestamp. The recorder, the store, the
operations, the CLI and the viewer import them from here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# tasks.status and task_steps.step_type (the values of stepsdk.TaskStatus and stepsdk.StepType)
TASK_STATUSES = ("running", "success", "failed", "interrupted")
STEP_TYPES = ("thinking", "action", "screenshot", "error", "validation")
# task_steps.error_category (stepsdk.recording.error_category.categorize answers one of them)
ERROR_CATEGORIES = (
    "timeout",
    "connection",
    "auth",
    "rate_limit",
    "validation",
    "model_output",
    "device",
    "other",
)

# length checks of the schema (characters)
MAX_TASK_ID = 200
MAX_TITLE = 2000
MAX_AGENT = 200
MAX_STEP_NAME = 200

# the private Storage bucket of the screenshot objects
BUCKET = "step-screenshots"

# object key of a screenshot: <sha256[0:2]>/<sha256>.webp, sha256 of the stored WebP bytes, or
# <sha256[0:2]>/<sha256>.enc for an encrypted sensitive screen (sha256 of the ciphertext)
WEBP_SUFFIX = ".webp"
ENCRYPTED_SUFFIX = ".enc"
STORAGE_PATH_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.(webp|enc)$")


def storage_path(sha256_hex: str, suffix: str = WEBP_SUFFIX) -> str:
    """The content-addressed object key of bytes whose sha256 is ``sha256_hex``."""
    return f"{sha256_hex[:2]}/{sha256_hex}{suffix}"


def parse_timestamp(value: Any) -> datetime | None:
    """A stored timestamp (ISO-8601 string, ``Z`` or an offset; or a datetime) → aware datetime.

    The one rule: a timestamp without an offset is UTC (what PostgreSQL's ``timestamptz`` and the
    SDK's own rows mean). Anything that is not a timestamp → None, and so is one whose UTC instant
    Python cannot hold (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif not isinstance(value, str) or not value.strip():
        return None
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        return None
    return parsed


def has_offset(value: Any) -> bool:
    """Whether ``value`` is an ISO-8601 timestamp string that states its offset (the export format
    requires one: an imported file says what it means)."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.strip()).tzinfo is not None
    except ValueError:
        return False
