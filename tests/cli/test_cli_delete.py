"""``stepsdk delete``: tasks by id and an agent's history (optionally before a date), on the local
Supabase stack and on a local backup; objects shared with a task that stays are kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.store.backup import BackupStore
from tests.cli_data import (
    Dataset,
    counts,
    json_out,
    key_of,
    load_into_backup,
    load_into_stack,
    local_env,
    stack_env,
    stack_objects,
    webp,
)

SHARED, OWN_A, OWN_B, OWN_C = key_of(webp(1)), key_of(webp(2)), key_of(webp(3)), key_of(webp(4))


def _dataset() -> Dataset:
    """bot: a (images 1 shared with c, 2 own; 40 days old), b (image 3; 5 days old);
    other: c (images 1, 4)."""
    ds = Dataset()
    ds.add_task("a", agent="bot", age=timedelta(days=40), image_seeds=[1, 2, None])
    ds.add_task("b", agent="bot", age=timedelta(days=5), image_seeds=[3, 3])
    ds.add_task("c", agent="other", age=timedelta(days=1), image_seeds=[1, 4])
    return ds


def _ids(stack) -> list[str]:
    return [r["task_id"] for r in stack.sql("select task_id from public.tasks order by task_id")]


def test_delete_supabase_by_id_dry_run_then_for_real(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _dataset()
    load_into_stack(stack, ds)
    stack_env(monkeypatch, stack, tmp_path / "unused")
    before = counts(stack)
    assert main(["delete", "a", "--dry-run", "--json"]) == Exit.OK
    dry = json_out(capsys.readouterr().out)
    assert dry["dry_run"] and dry["task_ids"] == ["a"] and dry["object_paths"] == [OWN_A]
    assert counts(stack) == before and stack_objects(stack) == {SHARED, OWN_A, OWN_B, OWN_C}

    assert main(["delete", "a", "--yes", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert out["ok"] and out["task_ids"] == ["a"] and out["object_paths"] == [OWN_A]
    assert _ids(stack) == ["b", "c"]
    steps_a, shots_a = ds.for_task("a")
    assert counts(stack) == {
        "tasks": 2,
        "task_steps": before["task_steps"] - len(steps_a),
        "step_screenshots": before["step_screenshots"] - len(shots_a),
    }
    assert stack_objects(stack) == {SHARED, OWN_B, OWN_C}  # c still uses the shared image


def test_delete_supabase_unknown_id_exits_1_and_deletes_the_rest(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_stack(stack, _dataset())
    stack_env(monkeypatch, stack, tmp_path / "unused")
    assert main(["delete", "c", "nope", "--yes", "--json"]) == Exit.FAILED
    captured = capsys.readouterr()
    out = json_out(captured.out)
    assert out["task_ids"] == ["c"] and out["missing"] == ["nope"] and "match no task: nope" in captured.err
    assert sorted(out["object_paths"]) == [OWN_C]  # image 1 is still used by a
    assert _ids(stack) == ["a", "b"] and stack_objects(stack) == {SHARED, OWN_A, OWN_B}


def test_delete_supabase_agent_history_before_a_date(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_stack(stack, _dataset())
    stack_env(monkeypatch, stack, tmp_path / "unused")
    cutoff = stack.sql("select to_char(now() - interval '20 days', 'YYYY-MM-DD') as d")[0]["d"]
    assert main(["delete", "--agent", "bot", "--before", cutoff, "--yes", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["task_ids"] == ["a"]
    assert _ids(stack) == ["b", "c"]
    assert main(["delete", "--agent", "bot", "--yes", "--json"]) == Exit.OK  # the whole history
    out = json_out(capsys.readouterr().out)
    assert out["task_ids"] == ["b"] and out["object_paths"] == [OWN_B]
    assert _ids(stack) == ["c"] and stack_objects(stack) == {SHARED, OWN_C}


def test_delete_refuses_without_yes_when_nobody_can_confirm(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_into_stack(stack, _dataset())
    stack_env(monkeypatch, stack, tmp_path / "unused")
    assert main(["delete", "--agent", "bot"]) == Exit.USAGE  # stdin is not a terminal under pytest
    assert "pass --yes" in capsys.readouterr().err
    assert _ids(stack) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["a", "--agent", "bot"],
        ["a", "--before", "2026-01-01"],
        ["--agent", "bot", "--before", "yesterday"],
    ],
)
def test_delete_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    local_env(monkeypatch, tmp_path)
    try:
        status = main(["delete", *argv])
    except SystemExit as exc:  # argparse rejects a bad date itself
        status = exc.code
    assert status == Exit.USAGE


def test_delete_local_by_id_and_by_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "backup"
    ds = _dataset()
    load_into_backup(root, ds)
    local_env(monkeypatch, root)

    def state() -> tuple[set[str], set[str]]:
        files = {str(p.relative_to(root / "screenshots")) for p in (root / "screenshots").rglob("*.webp")}
        return set(BackupStore(root).read().tasks), files

    assert main(["delete", "c", "--dry-run", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["object_paths"] == [OWN_C]
    assert state() == ({"a", "b", "c"}, {SHARED, OWN_A, OWN_B, OWN_C})
    assert main(["delete", "c", "--yes", "--json"]) == Exit.OK
    assert json_out(capsys.readouterr().out)["task_ids"] == ["c"]
    assert state() == ({"a", "b"}, {SHARED, OWN_A, OWN_B})
    text = b"".join(p.read_bytes() for p in (root / "journal").glob("*.log"))
    assert b'"c"' not in text and b'"a"' in text  # the records are gone from the files

    assert main(["delete", "--agent", "bot", "--yes", "--json"]) == Exit.OK
    out = json_out(capsys.readouterr().out)
    assert sorted(out["task_ids"]) == ["a", "b"] and out["ok"]
    assert state() == (set(), set())
    assert main(["delete", "a", "--yes", "--json"]) == Exit.FAILED  # gone already
    assert json_out(capsys.readouterr().out)["missing"] == ["a"]


def _delete_at_a_terminal(root: Path, answer: bytes) -> tuple[int, str]:
    """``stepsdk delete c`` with a pseudo-terminal as stdin, answering the question with ``answer``."""
    import os
    import subprocess
    import sys

    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")} | {
        "STEPSDK_BACKUP_DIR": str(root)
    }
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from stepsdk.cli import main; sys.exit(main())",
                "delete",
                "c",
            ],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        os.write(master, answer)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, err + out  # the question and warnings on stderr, the report on stdout


def test_delete_asks_at_a_terminal(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    load_into_backup(root, _dataset())
    status, err = _delete_at_a_terminal(root, b"n\n")
    assert status == Exit.USAGE and "about to delete 1 task(s)" in err and "not confirmed" in err
    assert set(BackupStore(root).read().tasks) == {"a", "b", "c"}
    status, err = _delete_at_a_terminal(root, b"y\n")
    assert status == Exit.OK and "deleted 1 task(s)" in err
    assert set(BackupStore(root).read().tasks) == {"a", "b"}
