"""The public errors of stepsdk: one base, :class:`StepSDKError`, and a class per cause.

    try:
        stepsdk.ops.resync.resync(folder, config)
    except stepsdk.BackendUnavailableError:   # retry later
        ...
    except stepsdk.StepSDKError:              # anything else stepsdk refuses
        ...

The classes keep the built-in bases they had before (a :class:`ConfigurationError` is still a
``ValueError``, an :class:`ExportFormatError` too), so existing ``except`` clauses keep working.
Recording never raises these into the agent (a failed upload or screenshot is logged and kept in
the backup); they come from configuration, the CLI's operations and the viewer's data sources.
The CLI maps them to exit statuses (``stepsdk.cli._common.exit_status``), the viewer's JSON API to
HTTP statuses (one exception handler in ``viewer/api.py``).
"""

from __future__ import annotations

from typing import Final, Literal


class StepSDKError(Exception):
    """Base of every error stepsdk raises on purpose (not a bug)."""


class ConfigurationError(StepSDKError, ValueError):
    """Missing or unusable configuration: a bad option or environment variable, no Supabase URL or
    key where one is needed, a rejected key, an unreadable rules or price file."""


class BackendUnavailableError(StepSDKError):
    """The backend (Supabase) cannot be reached or does not answer in time: try again later."""


class ResyncError(StepSDKError):
    """``stepsdk resync`` cannot run at all (no key, backend unreachable, bad folder). The message
    is safe to print; the subclasses that are also :class:`ConfigurationError` or
    :class:`BackendUnavailableError` say which."""


class ExportFormatError(StepSDKError, ValueError):
    """The file is not a valid stepsdk export; ``errors`` lists what is wrong and where."""

    def __init__(self, errors: list[str], limit: int = 10) -> None:
        self.errors = errors
        shown = "; ".join(errors[:limit])
        more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
        super().__init__(f"{shown}{more}")


ScreenshotReason = Literal[
    "not_found",
    "is_directory",
    "empty",
    "corrupt",
    "truncated",
    "unsupported_format",
    "too_large",
    "decompression_bomb",
    "unreadable",
    "invalid_base64",
    "encode_failed",
]
SCREENSHOT_REASONS: Final[frozenset[str]] = frozenset(ScreenshotReason.__args__)  # type: ignore[attr-defined]


class ScreenshotError(StepSDKError):
    """A screenshot could not be turned into a stored image (bad input, not a bug).

    ``reason`` is one of :data:`SCREENSHOT_REASONS`; ``message`` is safe to store and show (it
    never holds the image data itself).
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in SCREENSHOT_REASONS:
            raise ValueError(
                f"unknown ScreenshotError reason {reason!r}; expected one of {sorted(SCREENSHOT_REASONS)}"
            )
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """JSON form for a step's metadata (``{"reason": ..., "message": ...}``)."""
        return {"reason": self.reason, "message": self.message}


__all__ = [
    "SCREENSHOT_REASONS",
    "BackendUnavailableError",
    "ConfigurationError",
    "ExportFormatError",
    "ResyncError",
    "ScreenshotError",
    "ScreenshotReason",
    "StepSDKError",
]
