"""A fresh backup is private under the usual umask 022: folders 0700, files 0600 (journals,
screenshot objects, imported journals, exports written by the CLI, the audit log)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepsdk import StepTracker
from stepsdk.cli import main
from stepsdk.cli._common import Exit
from tests.cli_data import local_env
from tests.fixtures_images import png_bytes, small_screen


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return out


def assert_private(root: Path) -> dict[str, int]:
    found = modes(root)
    wrong = {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }
    assert wrong == {}
    return found


def test_fresh_backup_export_and_import_are_private(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    assert stat.S_IMODE(probe.stat().st_mode) == 0o644  # what the umask alone gives
    src = tmp_path / "new" / "backup"  # its parent does not exist either
    with StepTracker("modes", backup_dir=src, supabase_url="", supabase_key="") as tracker:
        tracker.record_step("action", {"a": 1}, screenshot=png_bytes(small_screen()))
    found = assert_private(src)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert {"journal", "screenshots"} <= {name.split("/")[0] for name in found}
    assert any(name.endswith(".log") for name in found) and any(name.endswith(".webp") for name in found)
    local_env(monkeypatch, src)
    out = tmp_path / "export.zip"
    assert main(["export", "--with-screenshots", "-o", str(out)]) == Exit.OK
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    dest = tmp_path / "dest"
    local_env(monkeypatch, dest)
    assert main(["import", str(out)]) == Exit.OK
    found = assert_private(dest)
    assert any(name.startswith("journal/") for name in found)
