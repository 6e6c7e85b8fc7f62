"""Ready-made recording for common agent shapes (see docs/integrations.md).

- ``track_phone_agent(agent, ...)``: an Open-AutoGLM ``PhoneAgent``/``IOSPhoneAgent`` instance.
- ``tracked_client(tracker)`` / ``tracked_async_client(tracker)`` / ``TrackedTransport``: each
  ``httpx`` API call as a step.
- ``tracked_step(tracker, StepType.ACTION)``: any function (sync or async) or block as a step.
"""

from stepsdk.integrations.functions import StepBlock, tracked_step
from stepsdk.integrations.httpx_hooks import (
    TrackedAsyncTransport,
    TrackedTransport,
    tracked_async_client,
    tracked_client,
)
from stepsdk.integrations.phone_agent import PhoneAgentTracking, track_phone_agent

__all__ = [
    "PhoneAgentTracking",
    "StepBlock",
    "TrackedAsyncTransport",
    "TrackedTransport",
    "track_phone_agent",
    "tracked_async_client",
    "tracked_client",
    "tracked_step",
]
