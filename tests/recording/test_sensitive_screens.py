"""Sensitive screens through the public API: what reaches the bucket, the backup and an export.

A sensitive screen is never stored in the clear: checked byte-wise on every copy (no PNG/WebP/JPEG
magic, and Pillow cannot decode it). With the key the stored object decrypts to the screen.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from stepsdk import StepTracker
from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.config import Config
from stepsdk.recording import sensitive as _sensitive
from tests.cli_data import local_env
from tests.fixtures_images import png_bytes, small_screen
from tests.timing import WAIT

BUCKET = "step-screenshots"
KEY = _sensitive.generate_key()
OTHER_KEY = _sensitive.generate_key()
MAGICS = (b"\x89PNG", b"RIFF", b"WEBP", b"\xff\xd8\xff", b"GIF8")


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (_sensitive.ENV_KEY, _sensitive.ENV_KEY_FILE, _sensitive.ENV_POLICY):
        monkeypatch.delenv(name, raising=False)


def secret_screen() -> Image.Image:
    im = small_screen(seed=42, size=(200, 400))
    ImageDraw.Draw(im).rectangle((20, 100, 180, 140), fill=(200, 30, 30))
    return im


def assert_not_an_image(data: bytes) -> None:
    for magic in MAGICS:
        assert magic not in data, f"found {magic!r} in stored bytes"
    with pytest.raises(Exception):  # noqa: B017 - Pillow raises several types; any is a refusal
        Image.open(io.BytesIO(data)).load()


def backup_objects(root: Path) -> dict[str, bytes]:
    folder = root / "screenshots"
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.glob("*/*") if p.is_file()}


def record(tracker: StepTracker, **kwargs: Any) -> None:
    tracker.record_step("action", {"n": 1}, screenshot=png_bytes(secret_screen()), **kwargs)


# ----------------------------------------------------------------------- remote: bucket + backup
def test_sensitive_screen_is_ciphertext_in_the_bucket_and_the_backup(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_sensitive.ENV_KEY, KEY)
    config = Config.resolve(stack.url, stack.service_role_key, tmp_path, retry_max_time=2.0)
    with StepTracker("sens-remote", config=config) as tracker:
        record(tracker, sensitive=True)
        tracker.record_step("action", {"n": 2}, screenshot=png_bytes(small_screen(seed=3)))
        assert tracker.flush(WAIT).ok
    rows = {
        r["step_number"]: r
        for r in stack.sql(
            "select s.step_number, s.screenshot_path, c.metadata, c.file_hash from public.task_steps s "
            "join public.step_screenshots c on c.step_id = s.id where s.task_id = 'sens-remote'"
        )
    }
    enc, plain = rows[1], rows[2]
    assert enc["screenshot_path"].endswith(".enc") and plain["screenshot_path"].endswith(".webp")
    assert enc["metadata"]["encrypted"] == "AES-256-GCM" and enc["metadata"]["sensitive"] is True
    obj = stack.sql(
        "select metadata from storage.objects where bucket_id = %s and name = %s",
        (BUCKET, enc["screenshot_path"]),
    )[0]
    assert obj["metadata"]["mimetype"] == "application/octet-stream"
    stored = stack.client().storage.from_(BUCKET).download(enc["screenshot_path"])
    assert_not_an_image(stored)
    assert_not_an_image(backup_objects(tmp_path)[enc["screenshot_path"]])
    # the key opens it: the WebP of the screen, of the recorded size
    im = Image.open(io.BytesIO(_sensitive.decrypt(stored, _sensitive.parse_key(KEY))))
    assert im.format == "WEBP" and im.size == (200, 400)
    # the ordinary screen is untouched
    Image.open(io.BytesIO(stack.client().storage.from_(BUCKET).download(plain["screenshot_path"]))).load()


# ----------------------------------------------------------------------- local: policies
def test_redact_is_the_default_without_a_key_and_stores_no_pixels(tmp_path: Path) -> None:
    with StepTracker("sens-redact", backup_dir=tmp_path, supabase_url="", supabase_key="") as tracker:
        record(tracker, sensitive=True)
    objects = backup_objects(tmp_path)
    placeholder, w, h = _sensitive.placeholder()
    assert list(objects.values()) == [placeholder]  # the fixed placeholder, nothing else
    with Image.open(io.BytesIO(placeholder)) as im:
        assert im.size == (w, h) != (200, 400)
    from stepsdk.store.backup import BackupStore

    snap = BackupStore(tmp_path).read()
    (shot,) = snap.screenshots["sens-redact"]
    assert shot["metadata"]["withheld"] is True and shot["metadata"]["policy"] == "redact"


def test_store_policy_keeps_today_behaviour(tmp_path: Path) -> None:
    with StepTracker(
        "sens-store", backup_dir=tmp_path, supabase_url="", supabase_key="", screenshot_policy="store"
    ) as tracker:
        record(tracker, sensitive=True)
    (data,) = backup_objects(tmp_path).values()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (200, 400)


def test_policy_and_key_errors_are_raised_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = {"backup_dir": tmp_path, "supabase_url": "", "supabase_key": ""}
    with pytest.raises(ValueError, match="needs a key"):
        StepTracker(screenshot_policy="encrypt", **local)
    with pytest.raises(ValueError, match="must be one of"):
        StepTracker(screenshot_policy="hide", **local)
    monkeypatch.setenv(_sensitive.ENV_KEY, "not-a-key-0123456789")
    with pytest.raises(ValueError, match="256-bit key") as info:
        StepTracker(**local)
    assert "not-a-key" not in str(info.value)  # the value is never echoed
    key_file = tmp_path / "screens.key"
    key_file.write_text(KEY.encode().hex()[:0] + _sensitive.parse_key(KEY).hex())  # hex form works too
    monkeypatch.delenv(_sensitive.ENV_KEY)
    monkeypatch.setenv(_sensitive.ENV_KEY_FILE, str(key_file))
    assert _sensitive.resolve_policy().sensitive == "encrypt"


def test_wrong_key_and_no_key_give_clear_messages() -> None:
    blob = _sensitive.encrypt(b"RIFF....WEBP", _sensitive.parse_key(KEY))
    assert _sensitive.decrypt(blob, _sensitive.parse_key(KEY)) == b"RIFF....WEBP"
    wrong = _sensitive.viewable(blob, _sensitive.parse_key(OTHER_KEY))
    assert wrong.locked and wrong.reason == "wrong_key" and "wrong screenshot key" in (wrong.message or "")
    none = _sensitive.viewable(blob, None)
    assert none.locked and none.reason == "no_key" and _sensitive.ENV_KEY in (none.message or "")
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    assert _sensitive.viewable(damaged, _sensitive.parse_key(KEY)).reason == "corrupt"


def test_regions_are_blacked_out_or_blurred_before_encoding(tmp_path: Path) -> None:
    from PIL import ImageStat

    screen = Image.new("RGB", (300, 300), (255, 255, 255))
    draw = ImageDraw.Draw(screen)
    for x in range(100, 200, 4):  # a "password field": sharp black/white stripes, like text
        draw.rectangle((x, 100, x + 1, 149), fill=(0, 0, 0))
    box = (100, 100, 200, 150)
    assert ImageStat.Stat(screen.crop(box).convert("L")).stddev[0] > 100
    for style in ("black", "blur"):
        root = tmp_path / style
        config = Config.resolve("", "", root, region_style=style)
        with StepTracker(f"regions-{style}", config=config) as tracker:
            tracker.record_step("action", screenshot=png_bytes(screen), redact_regions=[(100, 100, 100, 50)])
        (data,) = backup_objects(root).values()
        with Image.open(io.BytesIO(data)) as im:
            stored = im.convert("L")
        inner = ImageStat.Stat(stored.crop((104, 104, 196, 146)))
        assert inner.stddev[0] < 12, (style, inner.stddev)  # the stripes cannot be read any more
        if style == "black":
            assert inner.mean[0] < 10
        assert ImageStat.Stat(stored.crop((0, 0, 90, 90))).mean[0] > 245  # outside the box: untouched
    assert ImageStat.Stat(screen.crop(box).convert("L")).stddev[0] > 100  # the caller's image is intact
    with pytest.raises(TypeError):
        StepTracker(backup_dir=tmp_path / "x", supabase_url="", supabase_key="").record_step(
            "action", screenshot=png_bytes(screen), redact_regions=[(1, 2, 3)]
        )


# ----------------------------------------------------------------------- export / import
def test_export_zip_holds_ciphertext_and_imports_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    monkeypatch.setenv(_sensitive.ENV_KEY, KEY)
    with StepTracker("sens-export", backup_dir=src, supabase_url="", supabase_key="") as tracker:
        record(tracker, sensitive=True)
    target = tmp_path / "out.zip"
    local_env(monkeypatch, src)
    assert main(["export", "sens-export", "--with-screenshots", "-o", str(target)]) == Exit.OK
    with zipfile.ZipFile(target) as zf:
        images = [n for n in zf.namelist() if n.startswith("screenshots/")]
        assert len(images) == 1 and images[0].endswith(".enc")
        assert_not_an_image(zf.read(images[0]))
    raw = target.read_bytes()
    assert b"\x89PNG" not in raw and b"WEBP" not in raw  # zip entries are stored, not hidden by deflate
    dest = tmp_path / "dest"
    local_env(monkeypatch, dest)
    assert main(["import", str(target)]) == Exit.OK
    ((name, data),) = backup_objects(dest).items()
    assert name.endswith(".enc") and _sensitive.is_encrypted(data)
