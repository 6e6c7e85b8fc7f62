"""Test data for the CLI tests: tasks with steps and real WebP screenshots (Pillow), written
either into the local Supabase stack (official client + Storage API) or into a backup folder
(the backup writer API)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

from stepsdk.store import backup as _backup

BUCKET = "step-screenshots"


def webp(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small real WebP image, different for each seed."""
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    img.putpixel((seed % size[0], 0), (255 - (seed % 256), 0, 0))
    buf = io.BytesIO()
    img.save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def key_of(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{sha[:2]}/{sha}.webp"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass
class Dataset:
    tasks: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    shots: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def add_task(
        self,
        task_id: str,
        *,
        age: timedelta = timedelta(hours=1),
        status: str = "success",
        agent: str = "bot",
        image_seeds: list[int | None] | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """A task started ``age`` ago with one step per entry of ``image_seeds`` (None: no image)."""
        started = datetime.now(UTC) - age
        task = {
            "task_id": task_id,
            "title": title or f"title of {task_id}",
            "description": None,
            "agent": agent,
            "status": status,
            "started_at": iso(started),
            "finished_at": None if status == "running" else iso(started + timedelta(seconds=30)),
            "result": "ok" if status == "success" else None,
            "error_message": "boom" if status == "failed" else None,
            "metadata": {"env": "test", "nested": {"n": 1}},
        }
        self.tasks.append(task)
        for number, seed in enumerate(image_seeds if image_seeds is not None else [1, None], start=1):
            self._add_step(task_id, number, started, seed)
        return task

    def _add_step(self, task_id: str, number: int, started: datetime, seed: int | None) -> None:
        step_id = str(uuid.uuid4())
        path = None
        if seed is not None:
            data = webp(seed)
            path = key_of(data)
            self.images[path] = data
            self.shots.append(
                {
                    "id": str(uuid.uuid4()),
                    "task_id": task_id,
                    "step_id": step_id,
                    "screenshot_path": path,
                    "file_size": len(data),
                    "file_hash": hashlib.sha256(data).hexdigest(),
                    "compressed": True,
                    "metadata": {"width": 40, "height": 30, "original_format": "PNG"},
                    "created_at": iso(started + timedelta(seconds=number)),
                }
            )
        self.steps.append(
            {
                "id": step_id,
                "task_id": task_id,
                "step_number": number,
                "step_type": "screenshot" if seed is not None else "action",
                "step_data": {"action": "tap", "x": number, "text": 'héllo, "quoted"\nline'},
                "thinking": f"step {number}: I should tap",
                "action_result": {"ok": True, "items": [1, 2]},
                "screenshot_path": path,
                "duration_ms": 12.5 * number,
                "success": number % 3 != 0,
                "error_type": None if number % 3 else "TimeoutError",
                "error_message": None if number % 3 else "took too long",
                "stack_trace": None,
                "started_at": iso(started + timedelta(seconds=number)),
                "metadata": {"k": number},
                "created_at": iso(started + timedelta(seconds=number)),
                "name": f"Tap {number}",
                "usage": {
                    "prompt_tokens": 10 * number,
                    "completion_tokens": number,
                    "total_tokens": 11 * number,
                },
                "error_category": None if number % 3 else "timeout",
            }
        )

    def for_task(self, task_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            [s for s in self.steps if s["task_id"] == task_id],
            [r for r in self.shots if r["task_id"] == task_id],
        )


def load_into_stack(stack: Any, ds: Dataset) -> None:
    client = stack.client()
    for path, data in ds.images.items():
        client.storage.from_(BUCKET).upload(path, data, {"content-type": "image/webp", "upsert": "true"})
    if ds.tasks:
        client.table("tasks").upsert(ds.tasks).execute()
    if ds.steps:
        client.table("task_steps").upsert(ds.steps).execute()
    if ds.shots:
        client.table("step_screenshots").upsert(ds.shots).execute()


def load_into_backup(root: Path, ds: Dataset) -> None:
    for path, data in ds.images.items():
        _backup.write_screenshot(root, path, data)
    writer = _backup.JournalWriter(root)
    records: list[dict[str, Any]] = [{"k": "task", "v": 1, "row": t} for t in ds.tasks]
    records += [{"k": "step", "row": s} for s in ds.steps]
    records += [{"k": "shot", "row": r} for r in ds.shots]
    writer.append(records)
    writer.close()


def stack_env(monkeypatch: Any, stack: Any, backup: Path) -> None:
    monkeypatch.setenv("SUPABASE_URL", stack.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", stack.service_role_key)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(backup))


def local_env(monkeypatch: Any, backup: Path) -> None:
    for name in ("SUPABASE_URL", "SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEPSDK_BACKUP_DIR", str(backup))


def stack_objects(stack: Any) -> set[str]:
    return {r["name"] for r in stack.sql("select name from storage.objects where bucket_id = %s", (BUCKET,))}


def counts(stack: Any) -> dict[str, int]:
    return {
        t: stack.sql(f"select count(*) as n from public.{t}")[0]["n"]
        for t in ("tasks", "task_steps", "step_screenshots")
    }


def json_out(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return json.loads(lines[0])
