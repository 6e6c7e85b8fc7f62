"""A real Arize Phoenix server (``phoenix serve`` from ``.venv-phoenix``, made by ``./dev.sh
setup``) on free loopback ports, with a temporary working dir and telemetry off.

Importing Phoenix takes ~9 s of CPU (30-60 s wall on the loaded CI box), so the sharing tests'
conftest starts it as soon as a ``phoenix`` test is collected; it boots while other tests run
and the test only waits for what is left. It runs at the lowest CPU priority (nice 19) so
the boot takes only idle CPU from the timing-sensitive tests running meanwhile."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PhoenixServer:
    def __init__(self) -> None:
        assert PHOENIX.exists(), f"{PHOENIX} is missing: run ./dev.sh setup (it installs arize-phoenix there)"
        self.work = Path(tempfile.mkdtemp(prefix="phoenix-"))
        port, grpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        env.update(
            {
                "PHOENIX_WORKING_DIR": str(self.work),
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(port),
                "PHOENIX_GRPC_PORT": str(grpc),
                "PHOENIX_TELEMETRY_ENABLED": "false",
                # its agent assistant connects to a documentation MCP server on the internet at
                # start (loopback only here: on a loaded machine that failure ended the server)
                "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
            }
        )
        self.log = (self.work / "phoenix.log").open("wb")
        # lowest CPU priority: it boots beside the suite and must not slow the timing-sensitive tests
        # (nice execs phoenix: the pid is phoenix's own, terminate() reaches it)
        self.proc = subprocess.Popen(
            ["nice", "-n", "19", str(PHOENIX), "serve"],
            env=env,
            cwd=self.work,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()

    def output(self) -> str:
        return (self.work / "phoenix.log").read_text(errors="replace")[-3000:]

    def wait_ready(self, cpu_timeout: float = 90) -> str:
        """Wait until Phoenix answers. Its boot runs at the lowest priority, so how long it takes
        in wall time is the machine's load; the deadline is Phoenix's own CPU time instead (its
        boot takes ~9 s of CPU): it fails for a Phoenix that cannot start, not for a busy machine."""
        process = psutil.Process(self.proc.pid)
        while True:
            assert self.proc.poll() is None, f"phoenix exited: {self.output()}"
            try:
                if httpx.get(self.url + "/v1/projects", timeout=5).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            cpu = sum(process.cpu_times()[:4])  # user + system, its own and its children's
            waited = time.monotonic() - self.started
            assert cpu < cpu_timeout, f"phoenix did not start in {cpu:.0f} s of CPU ({waited:.0f} s)"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)
