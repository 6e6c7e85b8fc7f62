"""public.stepsdk_delete_tasks_older_than: batched deletes, shared content-addressed objects,
dry runs, privileges, bad arguments, concurrent callers, and the Storage clean-up it enables."""

from __future__ import annotations

import io

import psycopg
import pytest
from PIL import Image
from postgrest.exceptions import APIError

from tests.cli_data import counts, webp

P_SHARED = "5a/shared-old-and-new.webp"  # rows in old-1 and new: must stay
P_OLD_PAIR = "0a/old-1-and-old-2.webp"  # rows in old-1 and old-2 only: freed with both
P_ONLY_O1 = "01/only-old-1.webp"  # row in old-1 only: freed
P_STEPLESS = "03/step-path-without-row.webp"  # old-3 step points at it, no screenshot row: freed
P_STEP_REF = "5f/new-step-path-only.webp"  # row in old-1; new's step references it (no row): stays
P_NEW = "0e/only-new.webp"  # new only: stays
FREED = {P_ONLY_O1, P_OLD_PAIR, P_STEPLESS}
KEPT = {P_SHARED, P_STEP_REF, P_NEW}

# task -> (age, [(screenshot_path on the step or None, screenshot row path or None)])
TASKS = {
    "old-3": ("50 days", [(P_STEPLESS, None)]),
    "old-1": (
        "40 days",
        [(P_SHARED, P_SHARED), (P_OLD_PAIR, P_OLD_PAIR), (P_ONLY_O1, P_ONLY_O1), (None, P_STEP_REF)],
    ),
    "old-2": ("35 days", [(P_OLD_PAIR, P_OLD_PAIR), (None, None)]),
    "new": ("1 day", [(P_SHARED, P_SHARED), (P_NEW, P_NEW), (P_STEP_REF, None)]),
    "running": ("2 hours", []),
}
OLD = ["old-3", "old-1", "old-2"]  # oldest first


def _insert(stack) -> None:
    for task_id, (age, steps) in TASKS.items():
        running = task_id == "running"
        stack.sql(
            "insert into public.tasks (task_id, status, started_at, finished_at) values"
            " (%s, %s, now() - %s::interval, case when %s then null else now() - %s::interval end)",
            (task_id, "running" if running else "success", age, running, age),
        )
        for n, (step_path, row_path) in enumerate(steps, start=1):
            [step] = stack.sql(
                "insert into public.task_steps (task_id, step_number, step_type, screenshot_path)"
                " values (%s, %s, 'screenshot', %s) returning id",
                (task_id, n, step_path),
            )
            if row_path:
                stack.sql(
                    "insert into public.step_screenshots (task_id, step_id, screenshot_path, file_size, file_hash)"
                    " values (%s, %s, %s, 10, repeat('ab', 32))",
                    (task_id, step["id"], row_path),
                )


def _counts(stack) -> tuple[int, ...]:
    """(tasks, task_steps, step_screenshots)."""
    return tuple(counts(stack).values())


def _retain(stack, *args) -> dict:
    placeholders = ", ".join(["%s"] * len(args))
    return stack.sql(f"select public.stepsdk_delete_tasks_older_than({placeholders}) as r", args)[0]["r"]


@pytest.fixture
def data(stack):
    _insert(stack)
    # 5 tasks; steps 1 + 4 + 2 + 3 = 10; screenshot rows 0 + 4 + 1 + 2 = 7
    assert _counts(stack) == (5, 10, 7)
    return stack


def test_dry_run_reports_without_deleting(data):
    r = _retain(data, "30 days", True)
    assert r["dry_run"] is True and r["task_ids"] == OLD and r["task_count"] == 3 and r["has_more"] is False
    assert set(r["unreferenced_paths"]) == FREED and r["unreferenced_paths"] == sorted(FREED)
    assert _counts(data) == (5, 10, 7)


def test_delete_removes_old_tasks_with_their_rows_and_returns_only_unreferenced_paths(data):
    r = _retain(data, "30 days")
    assert r["dry_run"] is False and r["task_ids"] == OLD and r["has_more"] is False
    assert set(r["unreferenced_paths"]) == FREED
    # left: new (3 steps, 2 rows) and running (no steps)
    assert _counts(data) == (2, 3, 2)
    assert {x["task_id"] for x in data.sql("select task_id from public.tasks")} == {"new", "running"}
    again = _retain(data, "30 days")
    assert (again["task_ids"], again["unreferenced_paths"], again["task_count"]) == ([], [], 0)


def test_batches_go_oldest_first_and_free_each_path_exactly_once(data):
    results = [_retain(data, "30 days", False, 1) for _ in range(4)]
    assert [r["task_ids"] for r in results] == [["old-3"], ["old-1"], ["old-2"], []]
    assert [r["has_more"] for r in results] == [True, True, False, False]
    # old-1's pair object is still used by old-2 after the second batch: freed only by the third
    assert [r["unreferenced_paths"] for r in results] == [[P_STEPLESS], [P_ONLY_O1], [P_OLD_PAIR], []]
    assert _counts(data) == (2, 3, 2)


def test_nothing_old_enough(data):
    r = _retain(data, "3650 days")
    assert (r["task_ids"], r["unreferenced_paths"], r["has_more"]) == ([], [], False)
    assert _counts(data) == (5, 10, 7)


def test_concurrent_cleanups_never_take_the_same_task(data):
    with psycopg.connect(data.db_url) as first, psycopg.connect(data.db_url) as second:
        a = first.execute("select public.stepsdk_delete_tasks_older_than('30 days', false, 1)").fetchone()[0]
        # `first` holds old-3 locked (not committed): the second caller skips it (and would
        # fail fast here instead of waiting forever if it tried to lock it)
        second.execute("set lock_timeout = '2s'")
        b = second.execute("select public.stepsdk_delete_tasks_older_than('30 days', false, 1)").fetchone()[0]
        second.commit()
        first.commit()
    assert (a["task_ids"], b["task_ids"]) == (["old-3"], ["old-1"])
    assert _counts(data) == (3, 5, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (("-1 day",), "max_age must be an interval of at least 1 minute"),
        (("30",), r"a bare number means seconds\), got 00:00:30"),  # 30 meant as days would wipe everything
        (("59 seconds",), "got 00:00:59"),
        ((None,), "at least 1 minute .*got null"),
        (("1 day", None), "dry_run must be true or false"),
        (("1 day", False, 0), "batch_limit must be between 1 and 10000, got 0"),
        (("1 day", False, 10001), "got 10001"),
        (("1 day", False, None), "got null"),
    ],
)
def test_bad_arguments_get_a_clear_error_and_delete_nothing(data, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        _retain(data, *args)
    assert _counts(data) == (5, 10, 7)


def test_only_the_service_role_may_run_it(data):
    # authenticated user and anon through the official client: permission denied (42501)
    token = data.user_token("a0000000-0000-4000-8000-000000000001")
    user = data.client(data.anon_key, headers={"Authorization": f"Bearer {token}"})
    for client in (user, data.client(data.anon_key)):
        with pytest.raises(APIError) as err:
            client.rpc("stepsdk_delete_tasks_older_than", {"max_age": "1 day"}).execute()
        assert err.value.code == "42501"
    with psycopg.connect(data.db_url) as conn:
        conn.execute("set role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select public.stepsdk_delete_tasks_older_than('1 day')")
    assert _counts(data) == (5, 10, 7)


def test_one_minute_is_the_shortest_age(data):
    r = _retain(data, "1 minute", True)
    assert r["task_ids"] == [*OLD, "new", "running"]  # every task is older than a minute


def test_bad_rpc_interval_is_rejected(data):
    with pytest.raises(APIError) as err:
        data.client().rpc("stepsdk_delete_tasks_older_than", {"max_age": "banana"}).execute()
    assert err.value.code == "22007"  # invalid interval syntax, straight from PostgreSQL
    with pytest.raises(APIError) as err:  # a JSON number is read as seconds: refused, not "delete all"
        data.client().rpc("stepsdk_delete_tasks_older_than", {"max_age": 30}).execute()
    assert err.value.code == "22023" and "at least 1 minute" in err.value.message
    assert _counts(data) == (5, 10, 7)


def test_cleanup_through_the_client_keeps_shared_objects_in_storage(data):
    client = data.client()
    bucket = client.storage.from_("step-screenshots")
    paths = sorted(FREED | KEPT)
    for i, path in enumerate(paths):
        bucket.upload(path, webp(i, (8, 8)), {"content-type": "image/webp"})
    freed: list[str] = []
    while True:  # the loop README.md documents, batch of 2
        r = (
            client.rpc("stepsdk_delete_tasks_older_than", {"max_age": "30 days", "batch_limit": 2})
            .execute()
            .data
        )
        if r["unreferenced_paths"]:
            bucket.remove(r["unreferenced_paths"])
            freed += r["unreferenced_paths"]
        if not r["has_more"] or r["task_count"] == 0:
            break
    assert sorted(freed) == sorted(FREED)
    for path in paths:
        assert bucket.exists(path) is (path in KEPT), path
    assert Image.open(io.BytesIO(bucket.download(P_SHARED))).size == (8, 8)
    assert _counts(data) == (2, 3, 2)
