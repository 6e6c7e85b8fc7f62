"""Row-level security through the statistics: a signed-in user's numbers cover only the tasks
they own, another user sees nothing, anon is refused. All through the official client, over
HTTP, with the user's JWT, exactly as the viewer would call it."""

from __future__ import annotations

import pytest
from postgrest.exceptions import APIError

OWNER = "a0000000-0000-4000-8000-000000000001"  # owns seed-task-checkout only
STRANGER = "b0000000-0000-4000-8000-000000000002"


def _as(stack, user_id: str):
    token = stack.user_token(user_id)
    return stack.client(stack.anon_key, headers={"Authorization": f"Bearer {token}"})


def test_owner_sees_only_their_task_in_every_view(seeded):
    owner = _as(seeded, OWNER)
    tasks = owner.table("task_summary").select("task_id,total_steps,failed_steps", count="exact").execute()
    assert tasks.count == 1 and tasks.data == [
        {"task_id": "seed-task-checkout", "total_steps": 6, "failed_steps": 2}
    ]
    # the checkout task's two TimeoutErrors only; search's third one and old-report's are not theirs
    errors = owner.table("error_summary").select("*").execute().data
    assert [
        (e["error_type"], e["occurrences"], e["tasks_affected"], e["example_task_id"]) for e in errors
    ] == [("TimeoutError", 2, 1, "seed-task-checkout")]
    daily = owner.table("daily_summary").select("day,tasks,failed_tasks,steps").execute().data
    assert daily == [{"day": "2026-11-20", "tasks": 1, "failed_tasks": 1, "steps": 6}]
    types = owner.table("step_type_breakdown").select("step_type,steps").order("step_type").execute().data
    assert types == [
        {"step_type": "action", "steps": 2},
        {"step_type": "error", "steps": 1},
        {"step_type": "screenshot", "steps": 2},
        {"step_type": "thinking", "steps": 1},
    ]


def test_owner_functions_cover_only_their_task(seeded):
    owner = _as(seeded, OWNER)
    [stats] = owner.rpc("stepsdk_task_stats", {"p_task_id": "seed-task-checkout"}).execute().data
    assert (stats["total_steps"], stats["total_duration_ms"], stats["screenshots_count"]) == (6, 9100, 2)
    # someone else's task looks exactly like a task that does not exist
    assert owner.rpc("stepsdk_task_stats", {"p_task_id": "seed-task-login-flow"}).execute().data == []
    assert owner.rpc("stepsdk_task_step_types", {"p_task_id": "seed-task-old-report"}).execute().data == []
    slow = owner.rpc("stepsdk_slowest_steps", {"limit_n": 50}).execute().data
    # checkout's six durations, slowest first
    assert [s["duration_ms"] for s in slow] == [5000, 2000, 1000, 600, 400, 100]
    assert {s["task_id"] for s in slow} == {"seed-task-checkout"}


def test_another_user_sees_nothing(seeded):
    stranger = _as(seeded, STRANGER)
    for view in ("task_summary", "daily_summary", "error_summary", "step_type_breakdown"):
        assert stranger.table(view).select("*").execute().data == [], view
    assert stranger.rpc("stepsdk_task_stats", {"p_task_id": "seed-task-checkout"}).execute().data == []
    assert stranger.rpc("stepsdk_slowest_steps", {}).execute().data == []
    week = stranger.rpc("stepsdk_daily_stats", {"days": 7}).execute().data
    assert len(week) == 7 and {d["tasks"] for d in week} == {0}


def test_anon_is_refused_everywhere(seeded):
    anon = seeded.client(seeded.anon_key)
    for view in ("task_summary", "daily_summary", "error_summary", "step_type_breakdown"):
        with pytest.raises(APIError) as err:
            anon.table(view).select("*").execute()
        assert err.value.code == "42501", view
    for fn, args in [
        ("stepsdk_task_stats", {"p_task_id": "seed-task-checkout"}),
        ("stepsdk_daily_stats", {}),
        ("stepsdk_slowest_steps", {}),
        ("stepsdk_task_step_types", {"p_task_id": "x"}),
    ]:
        with pytest.raises(APIError) as err:
            anon.rpc(fn, args).execute()
        assert err.value.code == "42501", fn


def test_service_role_sees_everything(seeded):
    service = seeded.client()
    assert service.table("task_summary").select("task_id", count="exact").execute().count == 5
    [stats] = service.rpc("stepsdk_task_stats", {"p_task_id": "seed-task-login-flow"}).execute().data
    assert stats["total_steps"] == 4


def test_a_forged_token_gets_nothing(seeded):
    from tests.supabase_local.jwt import make_token

    forged = make_token("not-the-secret-" * 3, "authenticated", sub=OWNER, expires_in=3600)
    client = seeded.client(seeded.anon_key, headers={"Authorization": f"Bearer {forged}"})
    with pytest.raises(APIError) as err:
        client.table("task_summary").select("*").execute()
    assert err.value.code == "PGRST301"
