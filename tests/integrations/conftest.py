"""Fixtures for the integration tests: a fake adb device, a fake model server, a local HTTP server."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw

from tests.integrations.fake_model import FakeModelServer

HERE = Path(__file__).parent
SCREEN_SIZE = (270, 600)
SCREEN_COUNT = 6


@dataclass
class FakeDevice:
    state: Path
    bin_dir: Path

    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def reset(self, package: str = "com.android.launcher") -> None:
        """Back to the home screen, first screenshot, no calls, normal mode."""
        (self.state / "current").write_text(package)
        for name in ("calls.jsonl", "screencap_count", "mode"):
            (self.state / name).unlink(missing_ok=True)

    def set_mode(self, mode: str) -> None:
        (self.state / "mode").write_text(mode)

    def screen_png(self, index: int) -> bytes:
        return (self.state / "screens" / f"{index % SCREEN_COUNT:03d}.png").read_bytes()


def _draw_screens(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(SCREEN_COUNT):
        img = Image.new("RGB", SCREEN_SIZE, (240 - 20 * i, 245, 250))
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 0, SCREEN_SIZE[0], 40), fill=(30, 90, 200 - 20 * i))
        draw.text((10, 12), f"Fake phone screen {i}", fill="white")
        for row in range(5):
            y = 60 + row * 60
            draw.rectangle((10, y, 260, y + 45), outline=(120, 120, 120))
            draw.text((20, y + 15), f"Item {row} on screen {i}", fill="black")
        img.save(folder / f"{i:03d}.png", format="PNG")


def make_fake_device_dir(root: Path) -> Path:
    """`root` with the fake adb (bin/) and its state (state/, the phone's screens)."""
    _draw_screens(root / "state" / "screens")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    # -S: skip site-packages, the fake is stdlib-only and starts in a few milliseconds.
    adb.write_text(f"#!{sys.executable} -S\n" + (HERE / "fake_adb.py").read_text())
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root


def use_fake_device(root: Path, setenv: Any, set_attr: Any) -> FakeDevice:
    """The fake adb of `root` first on PATH, with zero agent delays (through the given setters:
    a test's monkeypatch, or a benchmark's own)."""
    device = FakeDevice(state=root / "state", bin_dir=root / "bin")
    device.reset()
    setenv("FAKE_ADB_STATE", str(device.state))
    setenv("PATH", f"{device.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    from phone_agent.config.timing import TIMING_CONFIG

    for group in (TIMING_CONFIG.action, TIMING_CONFIG.device):
        for name in vars(group):
            set_attr(group, name, 0.0)
    return device


@pytest.fixture(scope="session")
def _fake_device_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_device_dir(tmp_path_factory.mktemp("fake-device"))


@pytest.fixture
def fake_device(_fake_device_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDevice:
    """A fake adb first on PATH, with zero agent delays; reset for each test."""
    return use_fake_device(_fake_device_dir, monkeypatch.setenv, monkeypatch.setattr)


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModelServer]:
    server = FakeModelServer()
    yield server
    server.close()


@pytest.fixture
def model(fake_model: FakeModelServer) -> FakeModelServer:
    fake_model.script()
    fake_model.usage = None
    return fake_model


def make_agent(model: FakeModelServer, *, max_steps: int = 10, **agent_kwargs: Any) -> Any:
    """A real PhoneAgent talking to the fake model; callbacks never block on input()."""
    from phone_agent import PhoneAgent
    from phone_agent.agent import AgentConfig
    from phone_agent.model import ModelConfig

    agent_kwargs.setdefault("confirmation_callback", lambda message: True)
    agent_kwargs.setdefault("takeover_callback", lambda message: None)
    agent = PhoneAgent(
        model_config=ModelConfig(base_url=model.base_url, api_key="sk-test-not-a-secret", lang="en"),
        agent_config=AgentConfig(max_steps=max_steps, lang="en", verbose=False),
        **agent_kwargs,
    )
    # Injected model failures must not be retried by the openai client (2 retries by default).
    agent.model_client.client = agent.model_client.client.with_options(max_retries=0)
    return agent


# ------------------------------------------------------------------------------ a local HTTP server
class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path  # absolute-form too (requests sent through a proxy)
        if path == "/json":
            body = json.dumps({"items": [1, 2, 3], "access_token": "tok-in-response-body"}).encode()
            self._send(200, body, "application/json", {"Set-Cookie": "sid=cookie-secret-value; HttpOnly"})
        elif path == "/v1/forecast":  # docs/integrations.md's example API
            self._send(
                200, json.dumps({"city": "Paris", "summary": "sunny, 21°C"}).encode(), "application/json"
            )
        elif path == "/missing":
            self._send(404, b"no such thing", "text/plain; charset=utf-8")
        elif path == "/boom":
            self._send(503, b'{"error": "overloaded"}', "application/json")
        elif path == "/png":
            self._send(200, SMALL_PNG, "image/png")
        elif path == "/big":
            self._send(200, b"x" * 100_000, "text/plain")
        elif path == "/gzip":
            self._send(
                200, gzip.compress(b'{"zipped": true}'), "application/json", {"Content-Encoding": "gzip"}
            )
        elif path == "/slow":  # the clients give up after 0.3 s: 5 s leaves a loaded machine room
            time.sleep(5.0)
            self._send(200, b"late", "text/plain")
        elif path == "/slowbody":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"first part;")
            self.wfile.flush()
            time.sleep(5.0)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(b"y" * 89)
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/json"})
        else:
            self._send(404, b"unknown route", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(201, body, self.headers.get("Content-Type", "application/octet-stream"))


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


SMALL_PNG = _png()


@dataclass
class ApiServer:
    url: str


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ApiHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="api-server", daemon=True)
    thread.start()
    yield ApiServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url() -> str:
    """A local URL where nothing listens (a port just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


# ------------------------------------------------------------------------------ local trackers
@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Supabase from the environment: trackers write into their backup folder only."""
    for name in (
        "SUPABASE_URL",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "STEPSDK_BACKUP_DIR",
        "STEPSDK_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


def backup_steps(backup_dir: Path, task_id: str) -> list[dict[str, Any]]:
    from stepsdk.store.backup import BackupStore

    snap = BackupStore(backup_dir).read()
    assert not snap.problems, snap.problems
    return snap.steps.get(task_id, [])


def backup_task(backup_dir: Path, task_id: str) -> dict[str, Any]:
    from stepsdk.store.backup import BackupStore

    return BackupStore(backup_dir).read().tasks[task_id]


# ------------------------------------------------------------------------------ a fake WebDriverAgent (iOS)
class _WdaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    screens: list[bytes]
    calls: list[tuple[str, str]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path))
        if self.path == "/screenshot":
            shot = self.screens[sum(1 for c in self.calls if c == ("GET", "/screenshot")) - 1]
            self._json({"value": base64.b64encode(shot).decode()})
        elif self.path == "/wda/activeAppInfo":
            self._json({"value": {"bundleId": "com.apple.Preferences", "name": "", "pid": 1}})
        else:
            self._json({"value": None})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.calls.append(("POST", self.path))
        self._json({"sessionId": "fake-session", "value": {"sessionId": "fake-session"}})


@dataclass
class FakeWda:
    url: str
    calls: list[tuple[str, str]]


@pytest.fixture
def fake_wda(_fake_device_dir: Path) -> Iterator[FakeWda]:
    screens = [p.read_bytes() for p in sorted((_fake_device_dir / "state" / "screens").glob("*.png"))]
    calls: list[tuple[str, str]] = []
    handler = type("Wda", (_WdaHandler,), {"screens": screens, "calls": calls})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="fake-wda", daemon=True)
    thread.start()
    yield FakeWda(url=f"http://127.0.0.1:{httpd.server_address[1]}", calls=calls)
    httpd.shutdown()
    httpd.server_close()
