"""The statistics stay cheap where the viewer needs them to: a page of the task list aggregates
the steps of that page's tasks only, and counting the list aggregates no steps at all.

Checked on the executed plans (EXPLAIN ANALYZE) of a small generated data set, so the test is
fast and exact; the 100,000-task timings are in benchmarks/bench_sql_stats.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

TASKS, STEPS = 1500, 4


@pytest.fixture
def many(stack):
    stack.sql(
        "insert into public.tasks (task_id, title, agent, status, started_at, finished_at)"
        " select 'plan-' || i, 'Task ' || i, 'agent-' || (i %% 3), s, now() - i * interval '1 minute',"
        "        case when s = 'running' then null else now() - i * interval '1 minute' + interval '5 seconds' end"
        " from generate_series(1, %s) i,"
        "      lateral (select (array['success', 'failed', 'running'])[1 + i %% 3] as s) x",
        (TASKS,),
    )
    stack.sql(
        "insert into public.task_steps (task_id, step_number, step_type, duration_ms, success)"
        " select 'plan-' || i, n, 'action', (i * n) %% 997, (i + n) %% 7 <> 0"
        " from generate_series(1, %s) i, generate_series(1, %s) n",
        (TASKS, STEPS),
    )
    stack.sql("analyze public.tasks, public.task_steps, public.step_screenshots")
    return stack


def _nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _executed(stack, query: str) -> list[dict]:
    [row] = stack.sql("explain (analyze, format json) " + query)
    plan = row["QUERY PLAN"]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return list(_nodes(plan[0]["Plan"]))


def _steps_scans(nodes: list[dict]) -> int:
    """How many times any scan of task_steps ran (0 when never executed)."""
    return sum(n.get("Actual Loops", 0) for n in nodes if n.get("Relation Name") == "task_steps")


@pytest.mark.parametrize("where", ["", "where status = 'failed'", "where agent = 'agent-1'"])
def test_a_page_aggregates_only_its_own_tasks(many, where):
    nodes = _executed(many, f"select * from public.task_summary {where} order by started_at desc limit 50")
    assert _steps_scans(nodes) == 50
    # and the page itself is right: the newest matching tasks, 4 steps each
    rows = many.sql(
        f"select task_id, total_steps from public.task_summary {where} order by started_at desc limit 50"
    )
    assert len(rows) == 50 and {r["total_steps"] for r in rows} == {STEPS}


def test_counting_the_list_aggregates_no_steps(many):
    nodes = _executed(many, "select count(*) from public.task_summary")
    assert _steps_scans(nodes) == 0
    assert many.sql("select count(*) as n from public.task_summary") == [{"n": TASKS}]


def test_one_task_reads_only_its_steps(many):
    nodes = _executed(many, "select * from public.task_summary where task_id = 'plan-700'")
    assert _steps_scans(nodes) == 1
    rows_read = sum(n.get("Actual Rows", 0) for n in nodes if n.get("Relation Name") == "task_steps")
    assert rows_read <= STEPS


def test_the_day_filter_reaches_the_day_index(many):
    # At this size the planner rightly prefers a seq scan; with seq scans priced out, the plan
    # shows the view's day filter was pushed down onto tasks_started_day_utc_idx (what keeps
    # stepsdk_daily_stats(7) reading only a week of tasks at 100,000 tasks).
    query = (
        "select * from public.daily_summary"
        " where day between (now() at time zone 'UTC')::date - 2 and (now() at time zone 'UTC')::date"
    )
    with psycopg.connect(many.db_url, autocommit=True) as conn:
        conn.execute("set enable_seqscan = off")
        [(plan,)] = conn.execute("explain (analyze, format json) " + query).fetchall()
    nodes = list(_nodes(plan[0]["Plan"]))
    on_index = [n for n in nodes if n.get("Index Name") == "tasks_started_day_utc_idx"]
    assert on_index and "started_at AT TIME ZONE" in on_index[0]["Index Cond"]
    # 1500 tasks a minute apart span ~25 h, so three UTC days always hold them all: the numbers add up
    rows = many.sql(query)
    assert sum(r["tasks"] for r in rows) == TASKS and sum(r["steps"] for r in rows) == TASKS * STEPS
