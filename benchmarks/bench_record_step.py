"""Caller-thread cost of recording one step: stepsdk vs OpenTelemetry vs Langfuse vs a bare queue.put.

    .venv/bin/python benchmarks/bench_record_step.py [--calls 20000]

Every contender gets the same small payload, the same number of calls, in the same run:
- `queue.put`: the floor (a bare `queue.Queue().put` of the payload).
- stepsdk, backend reachable: the local Supabase stack (tests/supabase_local) is started.
- stepsdk, backend down: Supabase URL pointed at a closed local port.
- stepsdk, local mode: no Supabase, the backup is the store.
- OpenTelemetry SDK: a span per step with the payload as attributes, BatchSpanProcessor, OTLP
  HTTP exporter pointed at a closed local port.
- Langfuse SDK: `start_observation(...).end()` per step with the payload as input, host pointed
  at a closed local port.
Prints a markdown table of median and p99 microseconds per call. The calls come back to back
(far faster than any agent), so stepsdk's queue (max_queue=1,000) fills and some steps are
written on the caller's thread (backpressure): the last column counts them; they make the p99.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.supabase_local.postgres import free_port  # closed again on return: connections are refused

PAYLOAD = {"action": "tap", "x": 540, "y": 720, "element": "Wi-Fi"}


def measure(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(min(1000, calls)):  # warm-up
        fn()
    pc = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = pc()
        fn()
        samples.append(pc() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


@contextlib.contextmanager
def stepsdk_tracker(url: str, key: str) -> Iterator[Callable[[], object]]:
    from stepsdk import StepTracker, StepType

    with tempfile.TemporaryDirectory() as folder:
        tracker = StepTracker(title="bench", backup_dir=folder, supabase_url=url, supabase_key=key)

        def one() -> object:
            return tracker.record_step(StepType.ACTION, PAYLOAD, duration_ms=12.0)

        one.tracker = tracker  # type: ignore[attr-defined]  # lets main() report spills
        try:
            yield one
        finally:
            result = tracker.close(timeout=30)
            print(f"  {url or 'local mode'}: close() -> {result}", file=sys.stderr)


@contextlib.contextmanager
def otel_tracer() -> Iterator[Callable[[], object]]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def one() -> None:
        span = tracer.start_span("step", attributes=PAYLOAD)
        span.end()

    try:
        yield one
    finally:
        provider.shutdown()


@contextlib.contextmanager
def langfuse_client() -> Iterator[Callable[[], object]]:
    from langfuse import Langfuse

    client = Langfuse(
        public_key="pk-lf-bench", secret_key="sk-lf-bench", host=f"http://127.0.0.1:{free_port()}", timeout=1
    )

    def one() -> None:
        client.start_observation(name="step", input=PAYLOAD).end()

    try:
        yield one
    finally:
        with contextlib.suppress(Exception):
            client.shutdown()


@contextlib.contextmanager
def bare_queue() -> Iterator[Callable[[], object]]:
    q: queue.Queue[object] = queue.Queue()
    yield lambda: q.put(PAYLOAD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("stepsdk", "httpx", "opentelemetry", "langfuse"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    from tests.supabase_local import LocalStack

    stack = LocalStack.start()
    try:
        contenders: list[
            tuple[str, Callable[[], contextlib.AbstractContextManager[Callable[[], object]]]]
        ] = [
            ("bare queue.put (floor)", bare_queue),
            ("stepsdk, backend reachable", lambda: stepsdk_tracker(stack.url, stack.service_role_key)),
            ("stepsdk, backend down", lambda: stepsdk_tracker(f"http://127.0.0.1:{free_port()}", "k" * 40)),
            ("stepsdk, local mode", lambda: stepsdk_tracker("", "")),
            ("OpenTelemetry SDK (BatchSpanProcessor, OTLP HTTP, collector down)", otel_tracer),
            ("Langfuse SDK (host down)", langfuse_client),
        ]
        rows = []
        for name, make in contenders:
            with make() as fn:
                median, p99 = measure(fn, args.calls)
                tracker = getattr(fn, "tracker", None)
                spilled = f"{tracker.stats().spilled:,}" if tracker is not None else ""
            rows.append((name, median, p99, spilled))
        floor = rows[0][1]
        print(f"\nrecord one step on the caller's thread, {args.calls:,} calls each, payload {PAYLOAD}\n")
        print(
            "| contender | median µs | p99 µs | median / queue.put | steps written on the caller's thread (queue full) |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, median, p99, spilled in rows:
            print(f"| {name} | {median:.2f} | {p99:.2f} | {median / floor:.1f}× | {spilled} |")
        reached = stack.sql("select count(*) as n from public.task_steps")[0]["n"]
        print(f"\n(rows uploaded to the local stack by the reachable run: {reached:,})")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
