"""Backup folders and exports written by stepsdk 0.1 name the screenshot rows' object key
``storage_path`` (the column's name before migration 20261130001410; journals are never
rewritten). Resync, the index, export and import read them into the renamed schema, exactly
once, and write only ``screenshot_path``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.config import Config
from stepsdk.ops.resync import Resync
from stepsdk.store.backup import BackupStore, JournalWriter, write_screenshot
from stepsdk.store.index import BackupIndex
from supabase_local.stack import run_sql
from tests.cli_data import BUCKET, Dataset, counts, load_into_backup, local_env, stack_objects

OLD, NEW = "storage_path", "screenshot_path"


def _legacy(row: dict[str, Any]) -> dict[str, Any]:
    """A screenshot row as stepsdk 0.1 wrote it."""
    return {(OLD if k == NEW else k): v for k, v in row.items()}


def _dataset() -> Dataset:
    ds = Dataset()
    ds.add_task("legacy-run", image_seeds=[1, 2, None])
    ds.add_task("legacy-other", status="failed", image_seeds=[1])
    return ds


def _legacy_backup(root: Path, ds: Dataset) -> None:
    """A backup folder as stepsdk 0.1 left it: the same journal format, shot rows keyed storage_path."""
    for path, data in ds.images.items():
        write_screenshot(root, path, data)
    writer = JournalWriter(root)
    writer.append(
        [{"k": "task", "v": 1, "row": t} for t in ds.tasks]
        + [{"k": "step", "row": s} for s in ds.steps]
        + [{"k": "shot", "row": _legacy(r)} for r in ds.shots]
    )
    writer.close()


def _journal_text(root: Path) -> str:
    return "".join(p.read_text() for p in sorted(root.glob("*/*.log")))


def test_old_journal_is_read_with_the_new_name_and_resynced_exactly_once(stack: Any, tmp_path: Path) -> None:
    ds, root = _dataset(), tmp_path / "backup"
    _legacy_backup(root, ds)
    assert _journal_text(root).count(f'"{OLD}"') == len(ds.shots) == 3
    expected = {r["id"]: r for r in ds.shots}

    snap = BackupStore(root).read()
    assert snap.problems == []
    assert {r["id"]: r for rows in snap.screenshots.values() for r in rows} == expected
    assert sorted(snap.pending_objects()) == sorted(ds.images)
    index = BackupIndex(root)
    assert {r["id"]: r for r in index.screenshots("legacy-run")} == {
        k: r for k, r in expected.items() if r["task_id"] == "legacy-run"
    }
    assert index.screenshot_paths() == set(ds.images)

    config = Config.resolve(stack.url, stack.service_role_key, root)
    first = Resync(root, config).run()
    assert first.ok and first.uploaded["step_screenshots"] == 3 and first.uploaded["objects"] == 2, first
    rows = stack.sql(
        "select id::text as id, task_id, step_id::text as step_id, screenshot_path, file_size, file_hash"
        " from public.step_screenshots"
    )
    assert {r["id"]: r for r in rows} == {
        k: {c: r[c] for c in ("id", "task_id", "step_id", NEW, "file_size", "file_hash")}
        for k, r in expected.items()
    }
    assert stack_objects(stack) == set(ds.images)
    for path, data in ds.images.items():
        assert stack.client().storage.from_(BUCKET).download(path) == data

    second = Resync(root, config).run()  # nothing left: the old rows count as uploaded
    assert second.ok and not any(second.uploaded.values()), second
    assert counts(stack) == {"tasks": 2, "task_steps": 4, "step_screenshots": 3}
    assert BackupStore(root).read().pending_screenshots() == []
    assert _journal_text(root).count(f'"{OLD}"') == 3  # the old journal is never rewritten


def test_export_from_an_old_backup_writes_only_the_new_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, root = _dataset(), tmp_path / "backup"
    _legacy_backup(root, ds)
    local_env(monkeypatch, root)
    assert main(["export", "-o", str(tmp_path / "out.json")]) == Exit.OK
    text = (tmp_path / "out.json").read_text()
    assert OLD not in text
    shots = {r["id"]: r for b in json.loads(text)["tasks"] for r in b["screenshots"]}
    assert shots == {r["id"]: r for r in ds.shots}


def _old_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ds: Dataset) -> dict[str, Path]:
    """A JSON export and a zip export as stepsdk 0.1 wrote them (screenshot rows keyed storage_path)."""
    load_into_backup(tmp_path / "src", ds)
    local_env(monkeypatch, tmp_path / "src")
    assert main(["export", "-o", str(tmp_path / "new.json")]) == Exit.OK
    assert main(["export", "-o", str(tmp_path / "new.zip"), "--with-screenshots"]) == Exit.OK
    doc = json.loads((tmp_path / "new.json").read_text())
    for bundle in doc["tasks"]:
        bundle["screenshots"] = [_legacy(r) for r in bundle["screenshots"]]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    with zipfile.ZipFile(tmp_path / "new.zip") as src, zipfile.ZipFile(tmp_path / "old.zip", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "export.json":
                data = json.dumps(doc).encode()
            dst.writestr(info.filename, data)
    return {"json": tmp_path / "old.json", "zip": tmp_path / "old.zip"}


@pytest.mark.parametrize("kind", ["json", "zip"])
def test_old_export_imports_and_resyncs_into_the_renamed_schema_exactly_once(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    ds = _dataset()
    old = _old_export(tmp_path, monkeypatch, ds)[kind]
    assert f'"{OLD}"' in (
        old.read_text() if kind == "json" else zipfile.ZipFile(old).read("export.json").decode()
    )
    dest = tmp_path / "dest"
    local_env(monkeypatch, dest)
    assert main(["import", str(old)]) == Exit.OK
    assert OLD not in _journal_text(dest)  # written with the new name only
    assert {r["id"]: r for rows in BackupStore(dest).read().screenshots.values() for r in rows} == {
        r["id"]: r for r in ds.shots
    }

    if kind == "json":  # the images come from an earlier upload, as after a plain-JSON import
        for path, data in ds.images.items():
            stack.client().storage.from_(BUCKET).upload(
                path, data, {"content-type": "image/webp", "upsert": "true"}
            )
        for path, data in ds.images.items():  # and are in the folder too, so resync can send them
            write_screenshot(dest, path, data)
    config = Config.resolve(stack.url, stack.service_role_key, dest)
    first = Resync(dest, config).run()
    assert first.ok and first.uploaded["step_screenshots"] == 3, first
    assert {
        r["id"]: r["screenshot_path"]
        for r in stack.sql("select id::text as id, screenshot_path from public.step_screenshots")
    } == {r["id"]: r[NEW] for r in ds.shots}
    assert stack_objects(stack) == set(ds.images)
    second = Resync(dest, config).run()
    assert second.ok and not any(second.uploaded.values()), second
    assert counts(stack) == {"tasks": 2, "task_steps": 4, "step_screenshots": 3}


def test_an_export_row_with_both_names_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    old = _old_export(tmp_path, monkeypatch, ds)["json"]
    doc = json.loads(old.read_text())
    doc["tasks"][0]["screenshots"][0][NEW] = "ff/" + "f" * 64 + ".webp"
    old.write_text(json.dumps(doc))
    dest = tmp_path / "dest"
    local_env(monkeypatch, dest)
    assert main(["import", str(old)]) == Exit.DATA
    assert "has both 'screenshot_path' and 'storage_path'" in capsys.readouterr().err
    assert not (dest / "journal").exists() or _journal_text(dest) == ""


def test_rows_refused_by_a_database_not_migrated_yet_are_kept_and_resynced_after_the_migration(
    stack: Any, tmp_path: Path
) -> None:
    """The upgrade order supabase/README.md asks for, and what happens when it is not followed:
    the new SDK's screenshot rows against a table still named storage_path are refused, kept
    pending in the backup, and uploaded once 20261130001410 has run."""
    migration = (
        Path(__file__).parents[2] / "supabase" / "migrations" / "20261130001410_stepsdk_screenshot_path.sql"
    )
    ds, root = _dataset(), tmp_path / "backup"
    load_into_backup(root, ds)
    stack.sql("alter table public.step_screenshots rename column screenshot_path to storage_path")
    try:
        stack.schema_cache.reload()
        config = Config.resolve(stack.url, stack.service_role_key, root)
        before = Resync(root, config).run()
        assert (
            not before.ok and before.uploaded["task_steps"] == 4 and before.uploaded["step_screenshots"] == 0
        )
        assert counts(stack)["step_screenshots"] == 0
        assert len(BackupStore(root).read().pending_screenshots()) == 3
    finally:
        run_sql(stack.migration_db_url, migration.read_text())  # renames the column back, in place
        stack.schema_cache.reload()
    after = Resync(root, config).run()
    assert after.ok and after.uploaded["step_screenshots"] == 3, after
    assert {
        r["id"]: r["screenshot_path"]
        for r in stack.sql("select id::text as id, screenshot_path from public.step_screenshots")
    } == {r["id"]: r[NEW] for r in ds.shots}
    assert counts(stack) == {"tasks": 2, "task_steps": 4, "step_screenshots": 3}


def test_deleting_a_task_of_an_old_backup_removes_the_objects_only_it_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds, root = _dataset(), tmp_path / "backup"  # seed 1 is shared by both tasks, seed 2 is legacy-run's own
    _legacy_backup(root, ds)
    own = next(
        r[NEW]
        for r in ds.shots
        if r["task_id"] == "legacy-run"
        and r[NEW] not in {s[NEW] for s in ds.shots if s["task_id"] == "legacy-other"}
    )
    local_env(monkeypatch, root)
    assert main(["delete", "legacy-run", "--yes", "--json"]) == Exit.OK
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["task_ids"] == ["legacy-run"] and out["object_paths"] == [own]
    files = {str(p.relative_to(root / "screenshots")) for p in (root / "screenshots").rglob("*.webp")}
    assert files == set(ds.images) - {own}
    snap = BackupStore(root).read()
    assert set(snap.tasks) == {"legacy-other"} and [r[NEW] for r in snap.screenshots["legacy-other"]] == [
        r[NEW] for r in ds.shots if r["task_id"] == "legacy-other"
    ]
