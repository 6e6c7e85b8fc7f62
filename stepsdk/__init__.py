"""stepsdk: record every step of an AI agent run into Supabase or a local backup.

from stepsdk import StepTracker, StepType
with StepTracker(title="Open Wi-Fi settings", agent="phone-agent") as tracker:
    tracker.record_step(StepType.ACTION, {"action": "tap", "x": 540, "y": 720}, duration_ms=120)
"""

from stepsdk.config import Config
from stepsdk.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ExportFormatError,
    ResyncError,
    ScreenshotError,
    StepSDKError,
)
from stepsdk.model import Level, Step, StepType, TaskStatus
from stepsdk.recording.progress import FlushResult
from stepsdk.recording.sanitize import add_rules as add_redaction_rules
from stepsdk.recording.tracker import StepHandle, StepTracker, TrackerStats

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "Config",
    "ConfigurationError",
    "ExportFormatError",
    "FlushResult",
    "Level",
    "ResyncError",
    "ScreenshotError",
    "Step",
    "StepHandle",
    "StepSDKError",
    "StepTracker",
    "StepType",
    "TaskStatus",
    "TrackerStats",
    "__version__",
    "add_redaction_rules",
]
