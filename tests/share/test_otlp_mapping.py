"""The task → trace mapping without a receiver (the Phoenix test covers the wire)."""

from __future__ import annotations

from datetime import datetime

import pytest

from stepsdk.share import otlp

TASK = {
    "task_id": "t1",
    "agent": "bot",
    "status": "running",
    "started_at": "2026-11-01T00:00:00+00:00",
    "metadata": {"model": "m-9b"},
}


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000  # whole seconds here


def test_step_kinds_and_a_running_task_ends_at_its_last_step() -> None:
    thinking = {
        "id": "s1",
        "step_number": 1,
        "step_type": "thinking",
        "thinking": "plan",
        "success": True,
        "started_at": "2026-11-01T00:00:01+00:00",
        "duration_ms": 250,
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    other = {
        "id": "s2",
        "step_number": 2,
        "step_type": "validation",
        "step_data": {"check": 1},
        "success": False,
        "error_type": "AssertionError",
        "error_message": "no",
        "started_at": "2026-11-01T00:00:04+00:00",
        "duration_ms": 1000,
        "error_category": "validation",
    }
    chat = otlp.step_span(thinking, TASK, None)
    assert chat.name == "chat m-9b" and chat.attributes["gen_ai.operation.name"] == "chat"
    assert (
        chat.attributes["gen_ai.usage.input_tokens"] == 7
        and chat.attributes["gen_ai.usage.output_tokens"] == 3
    )
    assert chat.end_ns - chat.start_ns == 250_000_000 and chat.error is None
    plain = otlp.step_span(other, TASK, None)
    assert plain.name == "step validation" and plain.error == "no"
    assert (
        plain.attributes["error.type"] == "AssertionError" and "gen_ai.operation.name" not in plain.attributes
    )
    root = otlp.task_span(TASK, [thinking, other])
    assert root.start_ns == _ns("2026-11-01T00:00:00+00:00") and root.end_ns == _ns(
        "2026-11-01T00:00:05+00:00"
    )
    assert root.error is None and root.attributes["gen_ai.request.model"] == "m-9b"
    assert otlp.task_span({**TASK, "status": "failed", "error_message": "boom"}, []).error == "boom"


def test_ids_are_derived_from_the_task_id() -> None:
    a, b, c = otlp._TaskIds("t1"), otlp._TaskIds("t1"), otlp._TaskIds("t2")
    assert a.generate_trace_id() == b.generate_trace_id() != c.generate_trace_id()
    spans = [a.generate_span_id() for _ in range(3)]
    assert spans == [b.generate_span_id() for _ in range(3)] and len(set(spans)) == 3


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1:6006/", "http://127.0.0.1:6006/v1/traces"),
        ("https://otel.example/custom/path", "https://otel.example/custom/path"),
    ],
)
def test_traces_url(given: str, url: str) -> None:
    assert otlp.traces_url(given) == url


def test_traces_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="http"):
        otlp.traces_url("grpc://127.0.0.1:4317")
