"""The audit log: exports, imports and cleanups are recorded with who, what, when and how many,
in the local backup (``audit.log``) and in Supabase (``public.audit_log``, service role only);
``stepsdk audit`` lists them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from postgrest.exceptions import APIError

from stepsdk.cli import main
from stepsdk.cli._common import Exit
from stepsdk.ops import audit as _audit
from tests.cli_data import Dataset, load_into_backup, load_into_stack, local_env, stack_env

STRANGER = "b0000000-0000-4000-8000-000000000002"


def _dataset() -> Dataset:
    ds = Dataset()
    ds.add_task("t-new", age=timedelta(days=1), image_seeds=[1])
    ds.add_task("t-old", age=timedelta(days=40), image_seeds=[2, None])
    return ds


def _audit_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["audit", "--json", *argv]) == Exit.OK
    return json.loads(capsys.readouterr().out)["entries"]


def test_local_export_import_cleanup_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    load_into_backup(src, _dataset())
    local_env(monkeypatch, src)
    out = tmp_path / "all.json"
    assert main(["export", "-o", str(out)]) == Exit.OK
    assert (
        main(["cleanup", "--older-than", "30d", "--dry-run"]) == Exit.OK
    )  # a dry run deletes nothing: not logged
    assert main(["cleanup", "--older-than", "30d"]) == Exit.OK
    entries = _audit_json(capsys)
    assert [(e["action"], e["count"]) for e in entries] == [("export", 2), ("cleanup", 1)]
    assert entries[0]["target"] == str(out) and entries[0]["detail"]["steps"] == 3
    assert entries[1]["detail"]["task_ids"] == ["t-old"]
    assert all(e["actor"] == f"os:{_audit.os_user()}" and e["at"].endswith("+00:00") for e in entries)
    local_env(monkeypatch, dest)
    assert main(["import", str(out)]) == Exit.OK
    (imported,) = _audit_json(capsys, "--action", "import")
    assert (imported["count"], imported["target"], imported["detail"]["steps"]) == (2, str(out), 3)
    assert main(["audit"]) == Exit.OK
    assert "import" in capsys.readouterr().out  # the report on stdout


def test_supabase_entries_are_service_role_only(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sql("delete from public.audit_log")
    load_into_stack(stack, _dataset())
    stack_env(monkeypatch, stack, tmp_path / "backup")
    assert main(["export", "-o", str(tmp_path / "x.jsonl"), "--format", "jsonl"]) == Exit.OK
    assert main(["cleanup", "--older-than", "30d"]) == Exit.OK
    rows = stack.sql("select actor, action, count, target from public.audit_log order by id")
    assert [(r["action"], r["count"]) for r in rows] == [("export", 2), ("cleanup", 1)]
    assert {r["actor"] for r in rows} == {_audit.key_role(stack.service_role_key)} == {"service_role"}
    assert [e["action"] for e in _audit_json(capsys)] == ["export", "cleanup"]
    # users get nothing: no grant to authenticated or anon, whatever they own
    user = stack.client(stack.anon_key, headers={"Authorization": f"Bearer {stack.user_token(STRANGER)}"})
    for client in (user, stack.client(stack.anon_key)):
        with pytest.raises(APIError) as err:
            client.table("audit_log").select("*").execute()
        assert err.value.code == "42501"
        with pytest.raises(APIError):
            client.table("audit_log").insert({"actor": "me", "action": "export"}).execute()
    with pytest.raises(APIError) as err:  # append-only, even for the service role
        stack.client().table("audit_log").delete().eq("action", "export").execute()
    assert err.value.code == "42501"
    grants = stack.sql(
        "select grantee, privilege_type from information_schema.role_table_grants "
        "where table_schema = 'public' and table_name = 'audit_log' order by 1, 2"
    )
    assert {(g["grantee"], g["privilege_type"]) for g in grants if g["grantee"] != "postgres"} == {
        ("service_role", "INSERT"),
        ("service_role", "SELECT"),
    }


def test_a_missing_table_never_fails_the_action(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def table(self, name: str) -> Any:
            raise RuntimeError("relation public.audit_log does not exist")

    item = _audit.record("export", "x", 1, client=Broken())
    assert item.action == "export" and "audit_log" in caplog.text and "20261130001500" in caplog.text
