"""How much time tracking adds to a real PhoneAgent run with phone-sized screens (issue #10: the
run used to stall 5 s at its end when the last step carried a screenshot). The test suite checks
that such runs end cleanly (tests/integrations/test_phone_agent_lifecycle.py); this measures.

    .venv/bin/python benchmarks/bench_phone_overhead.py [--runs 10]

Each tracked run (into the local Supabase stack, 5 steps with 1080x2400 PNG screenshots) is
paired with an untracked run just before it, so both see the same machine load; the overhead is
their difference. Prints a markdown table; exits non-zero when a run's finish() timed out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 2.5  # half the old stall; a quiet machine measures ~0.1-0.4 s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for name in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY", "STEPSDK_BACKUP_DIR"):
        os.environ.pop(name, None)
    from stepsdk import StepTracker
    from tests.integrations.conftest import FakeDevice, make_fake_device_dir, use_fake_device
    from tests.integrations.fake_model import FakeModelServer
    from tests.integrations.test_phone_agent_lifecycle import draw_phone_screens, run_once
    from tests.supabase_local import LocalStack

    work = tempfile.TemporaryDirectory(prefix="bench-phone-")
    root = make_fake_device_dir(Path(work.name))
    use_fake_device(root, os.environ.__setitem__, setattr)
    state = root / "phone"
    state.mkdir()
    draw_phone_screens(state)
    os.environ["FAKE_ADB_STATE"] = str(state)
    device = FakeDevice(state=state, bin_dir=root / "bin")
    finishes: list[Any] = []
    real_finish = StepTracker.finish

    def spy(self: StepTracker, *a: Any, **kw: Any) -> Any:
        finishes.append(real_finish(self, *a, **kw))
        return finishes[-1]

    StepTracker.finish = spy  # type: ignore[method-assign]
    model = FakeModelServer()

    def timed(tracked: dict[str, Any] | None) -> float:
        start = time.perf_counter()
        run_once(model, device, tracked)
        return time.perf_counter() - start

    overheads: list[float] = []
    with LocalStack.start() as stack:
        timed(None)  # warm-up: imports, the model client
        for run in range(args.runs):
            baseline = timed(None)
            options = {
                "supabase_url": stack.url,
                "supabase_key": stack.service_role_key,
                "backup_dir": root / f"run{run}",
                "agent_name": f"phone-{run}",
            }
            overheads.append(timed(options) - baseline)
    model.close()
    work.cleanup()
    timed_out = sum(r.timed_out for r in finishes)
    print(f"\n| {args.runs} paired runs (5 steps, 1080x2400 screenshots) | seconds |")
    print("|---|---:|")
    print(f"| tracking overhead per run: median | {statistics.median(overheads):.2f} |")
    print(f"| tracking overhead per run: max | {max(overheads):.2f} |")
    print(f"| runs over the {TARGET_S} s target | {sum(o > TARGET_S for o in overheads)} |")
    print(f"| finish() timed out | {timed_out} |")
    return 1 if timed_out else 0


if __name__ == "__main__":
    sys.exit(main())
