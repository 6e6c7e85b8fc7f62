"""A task as an OpenTelemetry trace, sent over OTLP/HTTP (protobuf) with the real SDK exporter.

Mapping (OpenTelemetry GenAI semantic conventions, development status, where they apply):

- the task is the root span ``invoke_agent {agent}``: ``gen_ai.operation.name=invoke_agent``,
  ``gen_ai.agent.name``, ``gen_ai.conversation.id`` (the task id), ``gen_ai.request.model``
  when the task metadata names a ``model``; status ERROR for a failed task;
- each step is a child span, in step order, with the recorded start and duration:
  an action (``step_data.action``) is ``execute_tool {action}`` (``gen_ai.operation.name=
  execute_tool``, ``gen_ai.tool.name``, ``gen_ai.tool.call.arguments``); a step with token
  ``usage`` or thinking only is ``chat {model}`` (``gen_ai.usage.input_tokens`` /
  ``output_tokens``); other steps are ``step {type}``. A failed step has status ERROR,
  ``error.type`` and ``stepsdk.error.category``;
- the screenshot is a reference, never inline bytes: ``stepsdk.screenshot.path`` (the
  object key in the ``step-screenshots`` bucket) and ``stepsdk.screenshot.url`` (the Storage
  object URL when the source is Supabase);
- ``openinference.span.kind`` (AGENT / TOOL / LLM / CHAIN), ``input.value`` and
  ``output.value`` are added so OpenInference viewers (Arize Phoenix) show thinking and results.

Ids are derived from the task id (sha256), so exporting the same task twice yields the same
trace and span ids (a receiver can de-duplicate).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from stepsdk.schema import BUCKET, parse_timestamp
from stepsdk.store.export_format import TaskBundle

from .run import action_name

log = logging.getLogger("stepsdk.share")

TRACES_PATH = "/v1/traces"
MAX_ATTRIBUTE = 8_000  # characters of one text attribute (thinking, arguments, results)


class OtlpExportError(Exception):
    """The receiver did not accept a trace (unreachable, or an error answer)."""


def traces_url(endpoint: str) -> str:
    """``http://host:4318`` → ``http://host:4318/v1/traces``; a URL with a path is kept."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the OTLP endpoint must be an http(s) URL, got {endpoint!r}")
    return endpoint if parts.path not in ("", "/") else endpoint.rstrip("/") + TRACES_PATH


class _TaskIds:
    """An id generator for one task: trace id and span ids from sha256(task id, counter)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.count = 0

    def _digest(self, label: str) -> bytes:
        return hashlib.sha256(f"stepsdk\0{self.task_id}\0{label}".encode()).digest()

    def generate_trace_id(self) -> int:
        return int.from_bytes(self._digest("trace")[:16], "big") or 1

    def is_trace_id_random(self) -> bool:  # W3C trace-context "random" flag: ours are derived
        return False

    def generate_span_id(self) -> int:
        self.count += 1
        return int.from_bytes(self._digest(f"span{self.count}")[:8], "big") or 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime | None) -> int | None:
    """Exact nanoseconds since the epoch (a float timestamp would lose the microseconds)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000 if moment is not None else None


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_ATTRIBUTE else text[:MAX_ATTRIBUTE] + "…"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SpanPlan:
    """One span to emit (kept separate from the SDK so the mapping is easy to read and test)."""

    name: str
    start_ns: int | None
    end_ns: int | None
    attributes: dict[str, Any]
    error: str | None  # status description when the span failed


def task_span(task: dict[str, Any], steps: list[dict[str, Any]]) -> SpanPlan:
    agent = str(task.get("agent") or "agent")
    meta = task.get("metadata") if isinstance(task.get("metadata"), dict) else {}
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "gen_ai.conversation.id": str(task["task_id"]),
        "openinference.span.kind": "AGENT",
        "stepsdk.task_id": str(task["task_id"]),
        "stepsdk.task.status": str(task.get("status")),
        "stepsdk.task.steps": len(steps),
    }
    if isinstance(meta.get("model"), str):
        attrs["gen_ai.request.model"] = meta["model"]
    if task.get("title"):
        attrs["input.value"] = _text(task["title"])
    if task.get("result") is not None:
        attrs["output.value"] = _text(task["result"])
    start = parse_timestamp(task.get("started_at"))
    end = parse_timestamp(task.get("finished_at"))
    if end is None:  # still running (or interrupted): end at the last step's end
        ends = [e for e in (step_times(s)[1] for s in steps) if e is not None]
        end = max(ends) if ends else None
    failed = task.get("status") in ("failed", "interrupted")
    return SpanPlan(
        f"invoke_agent {agent}",
        _ns(start),
        _ns(end or start),
        attrs,
        str(task.get("error_message") or task.get("status")) if failed else None,
    )


def step_times(step: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    start = parse_timestamp(step.get("started_at")) or parse_timestamp(step.get("created_at"))
    ms = step.get("duration_ms")
    if start is None or not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
        return start, start
    return start, start + timedelta(milliseconds=float(ms))


def step_span(step: dict[str, Any], task: dict[str, Any], screenshot_base: str | None) -> SpanPlan:
    data = step.get("step_data")
    action = action_name(data)
    usage = step.get("usage") if isinstance(step.get("usage"), dict) else None
    meta = task.get("metadata") if isinstance(task.get("metadata"), dict) else {}
    model = meta.get("model") if isinstance(meta.get("model"), str) else None
    attrs: dict[str, Any] = {
        "stepsdk.step.id": str(step.get("id")),
        "stepsdk.step.number": _int(step.get("step_number")) or 0,
        "stepsdk.step.type": str(step.get("step_type")),
        "stepsdk.step.success": step.get("success") is not False,
        "gen_ai.agent.name": str(task.get("agent") or "agent"),
    }
    if action:
        name = f"execute_tool {action}"
        attrs.update(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": action,
                "gen_ai.tool.type": "function",
                "openinference.span.kind": "TOOL",
                "tool.name": action,
            }
        )
        nested = data.get("action") if isinstance(data, dict) else None
        attrs["gen_ai.tool.call.arguments"] = _text(nested if nested is not None else data)
    elif usage is not None or step.get("step_type") == "thinking":
        name = f"chat {model}" if model else "chat"
        attrs.update({"gen_ai.operation.name": "chat", "openinference.span.kind": "LLM"})
        if model:
            attrs["gen_ai.request.model"] = model
    else:
        name = f"step {step.get('step_type')}"
        attrs["openinference.span.kind"] = "CHAIN"
    if usage is not None:
        for ours, theirs in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            if _int(usage.get(ours)) is not None:
                attrs[theirs] = usage[ours]
        if _int(usage.get("prompt_tokens")) is not None:
            attrs["llm.token_count.prompt"] = usage["prompt_tokens"]
        if _int(usage.get("completion_tokens")) is not None:
            attrs["llm.token_count.completion"] = usage["completion_tokens"]
    if step.get("name"):
        attrs["stepsdk.step.name"] = _text(step["name"])
    if step.get("thinking"):
        attrs["input.value"] = _text(step["thinking"])
        attrs["stepsdk.thinking"] = _text(step["thinking"])
    if step.get("action_result") is not None:
        attrs["output.value"] = _text(step["action_result"])
    path = step.get("screenshot_path")
    if isinstance(path, str) and path:
        attrs["stepsdk.screenshot.path"] = path
        attrs["stepsdk.screenshot.bucket"] = BUCKET
        if screenshot_base:
            attrs["stepsdk.screenshot.url"] = f"{screenshot_base}/storage/v1/object/{BUCKET}/{quote(path)}"
    failed = step.get("success") is False
    if failed:
        attrs["error.type"] = str(step.get("error_type") or "error")
        if step.get("error_category"):
            attrs["stepsdk.error.category"] = str(step["error_category"])
    start, end = step_times(step)
    return SpanPlan(
        name,
        _ns(start),
        _ns(end),
        attrs,
        _text(step.get("error_message") or step.get("error_type") or "failed") if failed else None,
    )


def export_tasks(
    bundles: Iterable[TaskBundle],
    endpoint: str,
    *,
    headers: dict[str, str] | None = None,
    screenshot_base: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, int]:
    """Send every task as one trace; returns (traces, spans). Raises :class:`OtlpExportError`
    when the receiver did not accept one (the SDK exporter reports failure by return value)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    class _Checked(SpanExporter):
        """Remembers whether every batch was accepted."""

        def __init__(self, inner: SpanExporter) -> None:
            self.inner, self.failures = inner, 0

        def export(self, spans: Any) -> SpanExportResult:
            result = self.inner.export(spans)
            self.failures += result is not SpanExportResult.SUCCESS
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()

    traces = spans = 0
    url = traces_url(endpoint)
    resource = Resource.create({"service.name": "stepsdk", "openinference.project.name": "stepsdk"})
    for bundle in bundles:
        exporter = _Checked(OTLPSpanExporter(endpoint=url, headers=headers or {}, timeout=timeout))
        ids = _TaskIds(bundle.task_id)
        provider = TracerProvider(resource=resource, id_generator=ids)  # type: ignore[arg-type]
        # One export per task (all spans in one request, sent by force_flush).
        processor = BatchSpanProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=60_000)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("stepsdk.share.otlp")
        plan = task_span(bundle.task, bundle.steps)
        root = tracer.start_span(
            plan.name, kind=SpanKind.INTERNAL, attributes=plan.attributes, start_time=plan.start_ns
        )
        context = set_span_in_context(root)
        for step in bundle.steps:
            sp = step_span(step, bundle.task, screenshot_base)
            span = tracer.start_span(
                sp.name,
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=sp.attributes,
                start_time=sp.start_ns,
            )
            span.set_status(Status(StatusCode.ERROR, sp.error) if sp.error else Status(StatusCode.OK))
            span.end(end_time=sp.end_ns)
            spans += 1
        root.set_status(Status(StatusCode.ERROR, plan.error) if plan.error else Status(StatusCode.OK))
        root.end(end_time=plan.end_ns)
        spans += 1
        provider.force_flush()
        provider.shutdown()
        if exporter.failures:
            raise OtlpExportError(
                f"the OTLP receiver at {url} did not accept the trace of task {bundle.task_id}"
            )
        traces += 1
    return traces, spans
