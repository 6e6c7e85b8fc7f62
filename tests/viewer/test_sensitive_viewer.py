"""The viewer and encrypted sensitive screens: without the key every response is free of the
image (byte-wise), and the screenshot is a locked placeholder; with the key it is shown (and the
decryption is audited); a wrong key gives a clear message, not a crash."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from stepsdk import StepTracker
from stepsdk.ops import audit as _audit
from stepsdk.recording import sensitive as _sensitive
from stepsdk.viewer.data.backup_source import BackupSource
from tests.fixtures_images import png_bytes, small_screen
from tests.viewer.conftest import viewer_user

KEY = _sensitive.generate_key()
MAGICS = (b"\x89PNG", b"RIFF", b"WEBP", b"\xff\xd8\xff")


@pytest.fixture
def encrypted_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.delenv(_sensitive.ENV_KEY_FILE, raising=False)
    monkeypatch.delenv(_sensitive.ENV_POLICY, raising=False)
    monkeypatch.setenv(_sensitive.ENV_KEY, KEY)
    root = tmp_path / "backup"
    with StepTracker("sens-view", backup_dir=root, supabase_url="", supabase_key="") as tracker:
        tracker.record_step(
            "action",
            {"screen": "login"},
            screenshot=png_bytes(small_screen(seed=9, size=(180, 320))),
            sensitive=True,
        )
    (path,) = [str(p.relative_to(root / "screenshots")) for p in (root / "screenshots").glob("*/*")]
    assert path.endswith(".enc")
    monkeypatch.delenv(_sensitive.ENV_KEY)
    return root, path


async def test_without_the_key_no_response_holds_the_image(encrypted_backup: tuple[Path, str]) -> None:
    root, path = encrypted_backup
    async with viewer_user(BackupSource(root)) as user:
        bodies = []
        for url in (
            "/api/tasks/sens-view/report",
            "/api/tasks/sens-view/screenshots",
            "/api/tasks/sens-view/steps",
            f"/media/screenshots/{path}?fallback=true",
            "/tasks/sens-view",
        ):
            response = await user.http_client.get(url)
            assert response.status_code == 200, url
            bodies.append(response.content)
        locked = await user.http_client.get(f"/media/screenshots/{path}")
        assert locked.status_code == 403 and _sensitive.ENV_KEY in locked.json()["detail"]
        bodies.append(locked.content)
        placeholder = bodies[3]
        assert b"Locked: sensitive screen" in placeholder
        for body in bodies:
            assert not any(m in body for m in MAGICS)
            with pytest.raises(Exception):  # noqa: B017 - not decodable as an image
                Image.open(io.BytesIO(body)).load()
    assert list(_audit.read_local(root)) == []  # nothing was decrypted


async def test_with_the_key_the_screen_is_shown_and_audited(
    encrypted_backup: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, path = encrypted_backup
    monkeypatch.setenv(_sensitive.ENV_KEY, KEY)
    async with viewer_user(BackupSource(root)) as user:
        response = await user.http_client.get(f"/media/screenshots/{path}?fallback=true")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert response.headers["cache-control"] == "no-store"
    with Image.open(io.BytesIO(response.content)) as im:
        assert im.size == (180, 320)
    (entry,) = _audit.read_local(root)
    assert (entry.action, entry.target, entry.count) == ("decrypt", path, 1)


async def test_a_wrong_key_is_a_clear_message(
    encrypted_backup: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, path = encrypted_backup
    monkeypatch.setenv(_sensitive.ENV_KEY, _sensitive.generate_key())
    async with viewer_user(BackupSource(root)) as user:
        strict = await user.http_client.get(f"/media/screenshots/{path}")
        page = await user.http_client.get(f"/media/screenshots/{path}?fallback=true")
        monkeypatch.setenv(_sensitive.ENV_KEY, "short")
        bad = await user.http_client.get(f"/media/screenshots/{path}")
    assert strict.status_code == 403 and strict.json()["detail"].startswith("wrong screenshot key")
    assert page.status_code == 200 and b"Locked: wrong screenshot key" in page.content
    assert bad.status_code == 403 and "256-bit key" in bad.json()["detail"]
