"""The local stack's PostgREST: what supabase-py sends, answered as PostgREST v12+ answers it."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from postgrest import APIError

from supabase_local import make_token

JSON_CT = "application/json; charset=utf-8"


def rest(
    stack, method: str, path: str, key: str | None = None, token: str | None = None, **kw
) -> httpx.Response:
    key = key or stack.service_role_key
    headers = {"apikey": key, "Authorization": f"Bearer {token or key}", **kw.pop("headers", {})}
    return httpx.request(method, f"{stack.url}/rest/v1/{path}", headers=headers, timeout=10, **kw)


_service_clients: dict[int, object] = {}


def service(stack):
    """One service-role client per stack: creating one costs ~0.1 s (httpx/SSL set-up)."""
    return _service_clients.setdefault(id(stack), stack.client())


def add_task(stack, task_id: str, **cols) -> None:
    service(stack).table("tasks").insert({"task_id": task_id, **cols}).execute()


def add_steps(stack, task_id: str, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    rows = [
        {"id": i, "task_id": task_id, "step_number": k + 1, "step_type": "action", "duration_ms": float(k)}
        for k, i in enumerate(ids)
    ]
    service(stack).table("task_steps").insert(rows, returning="minimal").execute()
    return ids


# ----- insert / upsert ----------------------------------------------------------------------


def test_insert_returns_representation_with_201_and_headers(stack):
    r = rest(
        stack,
        "POST",
        "tasks",
        json={"task_id": "t1", "title": "hello"},
        headers={"Prefer": "return=representation"},
    )
    assert r.status_code == 201
    assert r.headers["content-type"] == JSON_CT
    assert r.headers["content-range"] == "*/*"
    assert r.headers["preference-applied"] == "return=representation"
    body = r.json()
    assert body[0]["task_id"] == "t1" and body[0]["status"] == "running" and body[0]["metadata"] == {}
    assert body[0]["started_at"].endswith("+00:00")


def test_repeated_prefer_headers_combine(stack):
    r = httpx.post(
        f"{stack.url}/rest/v1/tasks",
        json={"task_id": "t1"},
        headers=[
            ("apikey", stack.service_role_key),
            ("Authorization", f"Bearer {stack.service_role_key}"),
            ("Prefer", "return=representation"),
            ("Prefer", "count=exact"),
        ],
    )
    assert (r.status_code, r.headers["content-range"], r.json()[0]["task_id"]) == (201, "*/1", "t1")


def test_insert_minimal_is_201_without_body(stack):
    r = rest(stack, "POST", "tasks", json={"task_id": "t1"}, headers={"Prefer": "return=minimal"})
    assert (r.status_code, r.content) == (201, b"")
    assert stack.sql("select count(*) as n from tasks")[0]["n"] == 1


def test_client_insert_and_bulk_insert_with_columns(stack):
    sb = stack.client()
    res = sb.table("tasks").insert({"task_id": "t1", "title": "x"}, count="exact").execute()
    assert res.count == 1 and res.data[0]["title"] == "x"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    rows = [
        {"id": ids[0], "task_id": "t1", "step_number": 1, "step_type": "action", "success": True},
        {
            "id": ids[1],
            "task_id": "t1",
            "step_number": 2,
            "step_type": "thinking",
            "thinking": "hm",
            "success": True,
        },
        {"id": ids[2], "task_id": "t1", "step_number": 3, "step_type": "error", "success": False},
    ]
    res = sb.table("task_steps").insert(rows).execute()
    assert sorted(r["id"] for r in res.data) == sorted(ids)
    got = stack.sql("select step_number, thinking, success from task_steps order by step_number")
    assert got == [
        {"step_number": 1, "thinking": None, "success": True},
        {"step_number": 2, "thinking": "hm", "success": True},
        {"step_number": 3, "thinking": None, "success": False},
    ]


def test_bulk_insert_missing_keys_are_null_unless_missing_default(stack):
    add_task(stack, "t1")
    rows = [
        {"id": str(uuid.uuid4()), "task_id": "t1", "step_number": 1, "step_type": "action"},
        {"id": str(uuid.uuid4()), "task_id": "t1", "step_number": 2, "step_type": "action", "success": False},
    ]
    # success is NOT NULL with a default: a NULL from the union of keys violates it (as PostgREST)
    with pytest.raises(APIError) as e:
        stack.client().table("task_steps").insert(rows).execute()
    assert e.value.code == "23502"
    r = rest(
        stack,
        "POST",
        'task_steps?columns="id","task_id","step_number","step_type","success"',
        json=rows,
        headers={"Prefer": "return=representation,missing=default"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "missing=default, return=representation"
    assert [row["success"] for row in sorted(r.json(), key=lambda x: x["step_number"])] == [True, False]
    res = (
        stack.client()
        .table("task_steps")
        .insert([{"task_id": "t1", "step_number": 3, "step_type": "action"}], default_to_null=False)
        .execute()
    )
    assert uuid.UUID(res.data[0]["id"])  # the column default generated it


def test_upsert_merge_is_idempotent_and_200_when_nothing_inserted(stack):
    row = {"task_id": "t1", "title": "a"}
    r1 = rest(
        stack,
        "POST",
        "tasks?on_conflict=task_id",
        json=row,
        headers={"Prefer": "return=representation,resolution=merge-duplicates"},
    )
    r2 = rest(
        stack,
        "POST",
        "tasks?on_conflict=task_id",
        json={"task_id": "t1", "title": "b"},
        headers={"Prefer": "return=representation,resolution=merge-duplicates"},
    )
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.headers["preference-applied"] == "resolution=merge-duplicates, return=representation"
    assert r2.json()[0]["title"] == "b"
    # merge updates only the payload's columns
    stack.sql("update tasks set agent = 'keep'")
    stack.client().table("tasks").upsert({"task_id": "t1", "title": "c"}, on_conflict="task_id").execute()
    assert stack.sql("select title, agent from tasks") == [{"title": "c", "agent": "keep"}]


def test_upsert_conflict_target_must_be_unique(stack):
    merge = {"Prefer": "resolution=merge-duplicates"}
    _err(rest(stack, "POST", "tasks?on_conflict=title", json={"task_id": "t1"}, headers=merge), 400, "42P10")
    _err(rest(stack, "POST", "tasks?on_conflict=nope", json={"task_id": "t1"}, headers=merge), 400, "42703")
    r = rest(
        stack,
        "POST",
        "task_steps?on_conflict=task_id,step_number",
        headers=merge,
        json={"task_id": "t0", "step_number": 1, "step_type": "action"},
    )
    _err(r, 409, "23503")  # the composite unique target is accepted; the FK then fails
    assert stack.sql("select count(*) as n from tasks") == [{"n": 0}]


def test_upsert_replay_of_a_batch_never_duplicates(stack):
    add_task(stack, "t1")
    rows = [
        {"id": str(uuid.uuid4()), "task_id": "t1", "step_number": i, "step_type": "action"}
        for i in range(1, 6)
    ]
    sb = stack.client()
    for _ in range(3):
        sb.table("task_steps").upsert(rows, on_conflict="id", returning="minimal").execute()
    assert stack.sql("select count(*) as n from task_steps")[0]["n"] == 5


def test_upsert_ignore_duplicates_returns_only_inserted(stack):
    add_task(stack, "t1", title="orig")
    res = (
        stack.client()
        .table("tasks")
        .upsert(
            [{"task_id": "t1", "title": "new"}, {"task_id": "t2", "title": "two"}], ignore_duplicates=True
        )
        .execute()
    )
    assert [r["task_id"] for r in res.data] == ["t2"]
    assert stack.sql("select title from tasks where task_id = 't1'") == [{"title": "orig"}]


def test_insert_empty_array_is_201_and_empty(stack):
    r = rest(stack, "POST", "tasks", json=[], headers={"Prefer": "return=representation"})
    assert (r.status_code, r.json()) == (201, [])


# ----- errors of writes ---------------------------------------------------------------------


def _err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["proxy-status"] == f"PostgREST; error={code}"
    assert r.headers["content-type"] == JSON_CT
    body = r.json()
    assert set(body) == {"code", "details", "hint", "message"}
    assert body["code"] == code
    return body


def test_duplicate_key_is_409_23505(stack):
    add_task(stack, "t1")
    body = _err(rest(stack, "POST", "tasks", json={"task_id": "t1"}), 409, "23505")
    assert body["message"] == 'duplicate key value violates unique constraint "tasks_pkey"'
    assert body["details"] == "Key (task_id)=(t1) already exists."
    with pytest.raises(APIError) as e:
        add_task(stack, "t1")
    assert e.value.code == "23505" and "tasks_pkey" in e.value.message


def test_foreign_key_violation_is_409_23503(stack):
    row = {"id": str(uuid.uuid4()), "task_id": "nope", "step_number": 1, "step_type": "action"}
    _err(rest(stack, "POST", "task_steps", json=row), 409, "23503")


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"task_id": "t1", "status": "bogus"}, "23514"),  # check constraint
        ({"task_id": "t1", "status": None}, "23502"),  # not null
        ({"task_id": "t1", "started_at": "not a date"}, "22007"),  # bad literal
        ({"task_id": "t1", "owner_id": "not-a-uuid"}, "22P02"),
        ({"task_id": "t1", "nope": 1}, "PGRST204"),  # unknown column
    ],
)
def test_bad_rows_are_400_with_the_real_code(stack, row, code):
    body = _err(rest(stack, "POST", "tasks", json=row), 400, code)
    if code == "PGRST204":
        assert body["message"] == "Could not find the 'nope' column of 'tasks' in the schema cache"


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b"42", b"[1, 2]", b'"x"', b'{"task_id": NaN}', b'{"task_id": "\xff\xfe"}']
)
def test_invalid_bodies_are_400_pgrst102(stack, content):
    _err(
        rest(stack, "POST", "tasks", content=content, headers={"Content-Type": "application/json"}),
        400,
        "PGRST102",
    )


def test_non_json_bodies_are_415_and_other_verbs_405(stack):
    _err(
        rest(stack, "POST", "tasks", content=b"task_id\nt1", headers={"Content-Type": "text/csv"}),
        415,
        "PGRST107",
    )
    _err(rest(stack, "PUT", "tasks?task_id=eq.t1", json={"task_id": "t1"}), 405, "PGRST117")
    assert stack.sql("select count(*) as n from tasks")[0]["n"] == 0


def test_bulk_without_columns_needs_matching_keys(stack):
    body = _err(
        rest(stack, "POST", "tasks", json=[{"task_id": "a"}, {"task_id": "b", "title": "x"}]), 400, "PGRST102"
    )
    assert body["message"] == "All object keys must match"


def test_unknown_table_is_404_pgrst205_with_hint(stack):
    body = _err(rest(stack, "GET", "taskz"), 404, "PGRST205")
    assert body["message"] == "Could not find the table 'public.taskz' in the schema cache"
    assert body["hint"] == "Perhaps you meant the table 'public.tasks'"
    with pytest.raises(APIError) as e:
        stack.client().table("nope_table").select("*").execute()
    assert e.value.code == "PGRST205"


def test_schema_not_exposed_is_406(stack):
    body = _err(rest(stack, "GET", "objects", headers={"Accept-Profile": "storage"}), 406, "PGRST106")
    assert body["hint"] == "Only the following schemas are exposed: public"


# ----- reads ----------------------------------------------------------------------------------


def test_select_columns_filters_order_and_paging(stack):
    for i, (status, agent) in enumerate(
        [("running", "a"), ("success", "b"), ("failed", None), ("success", "a")]
    ):
        add_task(
            stack,
            f"t{i}",
            status=status,
            agent=agent,
            title=f"Title {i}",
            finished_at=None if status == "running" else "2030-01-01T00:00:00+00:00",
        )
    sb = stack.client()
    t = sb.table("tasks")
    assert [
        r["task_id"] for r in t.select("task_id").eq("status", "success").order("task_id").execute().data
    ] == ["t1", "t3"]
    assert [
        r["task_id"] for r in t.select("task_id").neq("status", "success").order("task_id").execute().data
    ] == ["t0", "t2"]
    assert [
        r["task_id"]
        for r in t.select("task_id").in_("status", ["failed", "running"]).order("task_id").execute().data
    ] == ["t0", "t2"]
    assert t.select("task_id").is_("agent", None).execute().data == [{"task_id": "t2"}]
    assert [
        r["task_id"] for r in t.select("task_id").not_.is_("agent", None).order("task_id").execute().data
    ] == ["t0", "t1", "t3"]
    assert [r["task_id"] for r in t.select("task_id").like("title", "Title 1*").execute().data] == ["t1"]
    assert [r["task_id"] for r in t.select("task_id").ilike("title", "%TITLE 3").execute().data] == ["t3"]
    assert [
        r["task_id"]
        for r in t.select("task_id").gt("task_id", "t1").lte("task_id", "t3").order("task_id").execute().data
    ] == ["t2", "t3"]
    assert [r["task_id"] for r in t.select("task_id").gte("task_id", "t3").execute().data] == ["t3"]
    assert [r["task_id"] for r in t.select("task_id").lt("task_id", "t1").execute().data] == ["t0"]
    ordered = t.select("task_id,agent").order("agent", desc=True, nullsfirst=True).order("task_id").execute()
    assert [r["task_id"] for r in ordered.data] == ["t2", "t1", "t0", "t3"]
    ordered = t.select("task_id").order("agent", nullsfirst=False).order("task_id", desc=True).execute()
    assert [r["task_id"] for r in ordered.data] == ["t3", "t0", "t1", "t2"]
    page = t.select("task_id", count="exact").order("task_id").range(1, 2).execute()
    assert ([r["task_id"] for r in page.data], page.count) == (["t1", "t2"], 4)
    assert t.select("task_id").order("task_id").limit(1).execute().data == [{"task_id": "t0"}]
    aliased = t.select("id:task_id,meta:metadata,title::text").eq("task_id", "t0").execute().data
    assert aliased == [{"id": "t0", "meta": {}, "title": "Title 0"}]


def test_in_filter_quotes_values_with_commas(stack):
    add_task(stack, "a,b")
    add_task(stack, 'q"x')
    add_task(stack, "plain")
    res = (
        stack.client()
        .table("tasks")
        .select("task_id")
        .in_("task_id", ["a,b", 'q"x'])
        .order("task_id")
        .execute()
    )
    assert [r["task_id"] for r in res.data] == ["a,b", 'q"x']
    assert rest(stack, "GET", "tasks?task_id=in.()").json() == []


def test_flat_or_and_filters(stack):
    for t in ("a", "b", "c,d"):
        add_task(stack, t)
    sb = stack.client()
    got = sb.table("tasks").select("task_id").or_('task_id.eq.a,task_id.eq."c,d"').order("task_id").execute()
    assert [r["task_id"] for r in got.data] == ["a", "c,d"]
    got = rest(stack, "GET", "tasks?select=task_id&not.or=(task_id.eq.a,task_id.eq.b)").json()
    assert got == [{"task_id": "c,d"}]
    got = rest(stack, "GET", "tasks?select=task_id&and=(task_id.gte.b,task_id.lt.c)").json()
    assert got == [{"task_id": "b"}]
    got = rest(stack, "GET", "tasks?select=task_id&not.and=(task_id.gte.b,task_id.lt.c)&order=task_id").json()
    assert got == [{"task_id": "a"}, {"task_id": "c,d"}]
    got = rest(
        stack,
        "GET",
        "tasks?select=task_id&or=(task_id.eq.a,and(task_id.gt.b,not.or(task_id.eq.x)))&order=task_id",
    ).json()
    assert got == [{"task_id": "a"}, {"task_id": "c,d"}]
    add_task(stack, 'q"x')
    got = (
        sb.table("tasks")
        .select("task_id")
        .or_('task_id.in.(b,"c,d"),task_id.eq."q\\"x"')
        .order("task_id")
        .execute()
    )
    assert [r["task_id"] for r in got.data] == ["b", "c,d", 'q"x']


def test_values_with_spaces_and_json_path_filters(stack):
    add_task(stack, "p 1", metadata={"env": "prod", "n": 3})
    add_task(stack, "p2", metadata={"env": "dev"})
    sb = stack.client()
    assert sb.table("tasks").select("task_id").eq("task_id", "p 1").execute().data == [{"task_id": "p 1"}]
    assert sb.table("tasks").select("task_id").eq("metadata->>env", "dev").execute().data == [
        {"task_id": "p2"}
    ]
    r = rest(stack, "GET", "tasks?select=env:metadata->>env&order=task_id")
    assert r.json() == [{"env": "prod"}, {"env": "dev"}]


def test_count_content_range_206_and_416(stack):
    for i in range(5):
        add_task(stack, f"t{i}")
    r = rest(
        stack, "GET", "tasks?select=task_id&order=task_id&offset=1&limit=2", headers={"Prefer": "count=exact"}
    )
    assert r.status_code == 206
    assert r.headers["content-range"] == "1-2/5"
    assert r.headers["preference-applied"] == "count=exact"
    r = rest(stack, "GET", "tasks?select=task_id", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.headers["content-range"]) == (200, "0-4/5")
    r = rest(stack, "GET", "tasks?select=task_id")
    assert (r.status_code, r.headers["content-range"]) == (200, "0-4/*")
    r = rest(stack, "GET", "tasks?task_id=eq.none")
    assert (r.status_code, r.headers["content-range"], r.json()) == (200, "*/*", [])
    body = _err(rest(stack, "GET", "tasks?offset=9", headers={"Prefer": "count=exact"}), 416, "PGRST103")
    assert body["details"] == "An offset of 9 was requested, but there are only 5 rows."


def test_head_has_headers_and_no_body(stack):
    add_task(stack, "t1")
    r = rest(stack, "HEAD", "tasks", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (200, b"", "0-0/1")
    res = stack.client().table("tasks").select("*", count="exact", head=True).execute()
    assert res.count == 1 and res.data == []


def test_db_max_rows_caps_results_at_1000(stack):
    stack.sql("insert into tasks (task_id) select 't' || g from generate_series(1, 1005) g")
    r = rest(stack, "GET", "tasks?select=task_id", headers={"Prefer": "count=exact"})
    assert r.status_code == 206
    assert len(r.json()) == 1000 and r.headers["content-range"] == "0-999/1005"
    assert len(rest(stack, "GET", "tasks?select=task_id&limit=5000").json()) == 1000


def test_single_and_maybe_single(stack):
    add_task(stack, "t1")
    add_task(stack, "t2")
    sb = stack.client()
    assert sb.table("tasks").select("task_id").eq("task_id", "t1").single().execute().data == {
        "task_id": "t1"
    }
    with pytest.raises(APIError) as e:
        sb.table("tasks").select("task_id").single().execute()
    assert e.value.code == "PGRST116" and e.value.details == "The result contains 2 rows"
    r = rest(stack, "GET", "tasks?task_id=eq.none", headers={"Accept": "application/vnd.pgrst.object+json"})
    body = _err(r, 406, "PGRST116")
    assert body["message"] == "Cannot coerce the result to a single JSON object"
    assert sb.table("tasks").select("task_id").eq("task_id", "none").maybe_single().execute() is None


def test_singular_mutation_with_wrong_row_count_is_rolled_back(stack):
    add_task(stack, "t1", title="a")
    add_task(stack, "t2", title="a")
    r = rest(
        stack,
        "PATCH",
        "tasks?title=eq.a",
        json={"title": "b"},
        headers={"Prefer": "return=representation", "Accept": "application/vnd.pgrst.object+json"},
    )
    _err(r, 406, "PGRST116")
    assert stack.sql("select count(*) as n from tasks where title = 'a'")[0]["n"] == 2


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("tasks?task_id=zz.1", "PGRST100"),  # unknown operator
        ("tasks?task_id=eq", "PGRST100"),  # no value
        ("tasks?agent=is.maybe", "PGRST100"),
        ("tasks?order=task_id.sideways", "PGRST100"),
        ("tasks?limit=ten", "PGRST100"),
        ("tasks?offset=-1", "PGRST100"),
        ("tasks?task_id=in.(a", "PGRST100"),
        ("tasks?and=(task_id.eq.1,and(a.eq))", "PGRST100"),
        ("tasks?and=(task_id)", "PGRST100"),
        ("tasks?or=task_id.eq.1", "PGRST100"),
        ("tasks?select=task_steps!inner(*)", "PGRST100"),  # embedding hints: deliberately unsupported
        ("tasks?select=*&task_steps.step_number=eq.1", "PGRST100"),  # filters on embedded: unsupported
        ("tasks?select=nope(*)", "PGRST200"),  # no relationship
        ("tasks?nope=eq.1", "42703"),  # unknown column: PostgreSQL's answer
        ("tasks?select=nope", "42703"),
        ("tasks?owner_id=eq.xyz", "22P02"),  # untyped literal cast by PostgreSQL
    ],
)
def test_bad_queries_are_400(stack, query, code):
    _err(rest(stack, "GET", query), 400, code)


def test_embedded_resources_follow_foreign_keys(stack):
    add_task(stack, "t1", title="one")
    add_task(stack, "t2", title="two")
    ids = add_steps(stack, "t1", 2)
    sb = service(stack)
    got = (
        sb.table("tasks")
        .select("task_id,steps:task_steps(step_number,task:tasks(title))")
        .order("task_id")
        .execute()
        .data
    )
    assert got[1] == {"task_id": "t2", "steps": []}  # one-to-many: an array, empty when nothing matches
    assert sorted(got[0]["steps"], key=lambda x: x["step_number"]) == [
        {"step_number": 1, "task": {"title": "one"}},
        {"step_number": 2, "task": {"title": "one"}},
    ]
    got = sb.table("task_steps").select("id,tasks(*)").eq("id", ids[0]).single().execute().data
    assert got["tasks"]["task_id"] == "t1" and got["tasks"]["title"] == "one"  # many-to-one: an object
    r = rest(
        stack,
        "POST",
        "tasks?select=task_id,task_steps(id)",
        json={"task_id": "t3"},
        headers={"Prefer": "return=representation"},
    )
    assert (r.status_code, r.json()) == (201, [{"task_id": "t3", "task_steps": []}])
    stack.sql(
        "create table public.t_pair (a text references public.tasks (task_id), "
        "b text references public.tasks (task_id)); grant select on public.t_pair to service_role"
    )
    try:
        _wait_for(lambda: rest(stack, "GET", "t_pair").status_code == 200)
        body = _err(rest(stack, "GET", "tasks?select=t_pair(*)"), 300, "PGRST201")  # two FKs: ambiguous
        assert "more than one relationship" in body["message"]
    finally:
        stack.sql("drop table public.t_pair")


# ----- update / delete ------------------------------------------------------------------------


def test_update_statuses_and_content_range(stack):
    add_task(stack, "t1")
    add_task(stack, "t2")
    r = rest(
        stack,
        "PATCH",
        "tasks?task_id=eq.t1",
        json={"title": "x"},
        headers={"Prefer": "return=representation"},
    )
    assert (r.status_code, r.headers["content-range"], r.json()[0]["title"]) == (200, "0-0/*", "x")
    r = rest(stack, "PATCH", "tasks?task_id=eq.t2", json={"title": "y"}, headers={"Prefer": "count=exact"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (204, b"", "0-0/1")
    r = rest(
        stack,
        "PATCH",
        "tasks?task_id=eq.none",
        json={"title": "z"},
        headers={"Prefer": "return=representation"},
    )
    assert (r.status_code, r.json(), r.headers["content-range"]) == (200, [], "*/*")
    _err(rest(stack, "PATCH", "tasks?task_id=eq.t1", json={"nope": 1}), 400, "PGRST204")
    _err(rest(stack, "PATCH", "tasks?task_id=eq.t1", json={"status": "bogus"}), 400, "23514")
    res = (
        stack.client()
        .table("tasks")
        .update({"status": "success", "finished_at": "2030-01-01T00:00:00Z"})
        .eq("task_id", "t1")
        .execute()
    )
    assert res.data[0]["status"] == "success" and res.data[0]["updated_at"] > res.data[0]["created_at"]


def test_delete_statuses_and_client(stack):
    for t in ("t1", "t2", "t3"):
        add_task(stack, t)
    add_steps(stack, "t1", 2)
    r = rest(stack, "DELETE", "tasks?task_id=eq.t3", headers={"Prefer": "count=exact"})
    assert (r.status_code, r.headers["content-range"]) == (204, "*/1")
    res = stack.client().table("tasks").delete().eq("task_id", "t1").execute()
    assert [x["task_id"] for x in res.data] == ["t1"]
    assert stack.sql("select count(*) as n from task_steps")[0]["n"] == 0  # on delete cascade
    assert stack.sql("select task_id from tasks") == [{"task_id": "t2"}]


# ----- rpc ------------------------------------------------------------------------------------


@pytest.fixture
def rpc_functions(stack):
    stack.sql("""
        create or replace function public.t_add(a int, b int default 1) returns int
            language sql immutable as $$ select a + b $$;
        create or replace function public.t_tasks(prefix text) returns setof public.tasks
            language sql stable as $$ select * from public.tasks where task_id like prefix || '%' $$;
        create or replace function public.t_ids() returns setof text
            language sql stable as $$ select task_id from public.tasks order by 1 $$;
        create or replace function public.t_touch(tid text) returns void
            language sql as $$ update public.tasks set title = 'touched' where task_id = tid $$;
        create or replace function public.t_echo(jsonb) returns jsonb language sql as $$ select $1 $$;
        create or replace function public.t_fail() returns int language plpgsql as
            $$ begin raise exception 'nope' using hint = 'h'; end $$;
        notify pgrst, 'reload schema';
    """)
    _wait_for(lambda: rest(stack, "POST", "rpc/t_fail").status_code != 404)
    yield
    stack.sql(
        "drop function public.t_add, public.t_tasks, public.t_ids, public.t_touch, public.t_echo, "
        "public.t_fail"
    )


def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_rpc_scalar_set_void_and_errors(stack, rpc_functions):
    for t in ("ab1", "ab2", "zz"):
        add_task(stack, t)
    sb = stack.client()
    assert sb.rpc("t_add", {"a": 2, "b": 3}).execute().data == 5
    assert sb.rpc("t_add", {"a": 2}).execute().data == 3
    r = rest(stack, "POST", "rpc/t_add", json={"a": 40, "b": 2})
    assert (r.status_code, r.content) == (200, b"42")
    r = rest(stack, "GET", "rpc/t_add?a=1&b=2")
    assert (r.status_code, r.json()) == (200, 3)
    got = sb.rpc("t_tasks", {"prefix": "ab"}).select("task_id").order("task_id", desc=True).execute().data
    assert got == [{"task_id": "ab2"}, {"task_id": "ab1"}]
    got = sb.rpc("t_tasks", {"prefix": "ab"}).eq("task_id", "ab1").execute().data
    assert [x["task_id"] for x in got] == ["ab1"]
    assert sb.rpc("t_ids", {}).execute().data == ["ab1", "ab2", "zz"]
    r = rest(stack, "POST", "rpc/t_touch", json={"tid": "zz"})
    assert (r.status_code, r.content) == (204, b"")
    assert stack.sql("select title from tasks where task_id = 'zz'") == [{"title": "touched"}]
    assert sb.rpc("t_echo", {"any": [1, "x"]}).execute().data == {"any": [1, "x"]}
    body = _err(rest(stack, "POST", "rpc/t_nope", json={"x": 1}), 404, "PGRST202")
    assert body["message"] == "Could not find the function public.t_nope(x) in the schema cache"
    _err(rest(stack, "POST", "rpc/t_add", json={"c": 1}), 404, "PGRST202")
    body = _err(rest(stack, "POST", "rpc/t_fail"), 400, "P0001")
    assert (body["message"], body["hint"]) == ("nope", "h")
    _err(rest(stack, "POST", "rpc/t_add", json={"a": "x"}), 400, "22P02")
    # GET runs read-only: a function that writes fails with 25006 → 405
    _err(rest(stack, "GET", "rpc/t_touch?tid=zz"), 405, "25006")


# ----- auth ------------------------------------------------------------------------------------


def test_jwt_errors_are_401(stack):
    bad = make_token("another-secret-that-is-long-enough-000", "service_role")
    r = rest(stack, "GET", "tasks", key=stack.anon_key, token=bad)
    body = _err(r, 401, "PGRST301")
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert body["message"]
    expired = make_token(stack.jwt_secret, "authenticated", sub=str(uuid.uuid4()), expires_in=-10)
    r = rest(stack, "GET", "tasks", key=stack.anon_key, token=expired)
    assert _err(r, 401, "PGRST303")["message"] == "JWT expired"
    _err(rest(stack, "GET", "tasks", key=stack.anon_key, token="garbage"), 401, "PGRST301")
    unknown_role = make_token(stack.jwt_secret, "superhero")
    body = _err(rest(stack, "GET", "tasks", key=stack.anon_key, token=unknown_role), 401, "22023")
    assert 'role "superhero" does not exist' in body["message"]


def test_apikey_is_required_by_the_gateway(stack):
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"Authorization": f"Bearer {stack.service_role_key}"})
    assert r.status_code == 401 and r.json()["message"] == "No API key found in request"
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"apikey": stack.user_token(str(uuid.uuid4()))})
    assert r.status_code == 401 and r.json()["message"] == "Invalid API key"
    # PostgREST reads only Authorization: the service_role key as apikey alone runs as anon
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"apikey": stack.service_role_key})
    assert r.status_code == 401 and r.json()["code"] == "42501"
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"apikey": stack.secret_key})
    assert r.status_code == 200  # an opaque secret key alone is mapped to service_role by the edge


def test_bodies_are_compact_json_with_utf8(stack):
    add_task(stack, "t1", title="héllo ✓", metadata={"k": [1, 2.5, None]})
    r = rest(stack, "GET", "tasks?select=title,metadata")
    assert json.loads(r.content.decode("utf-8")) == [{"title": "héllo ✓", "metadata": {"k": [1, 2.5, None]}}]


# ----- hostile input: identifiers and values never become SQL ----------------------------------

INJECTIONS = [
    "tasks?select=task_id;drop table public.t_canary",
    "tasks?select=task_id::text);drop table public.t_canary;--",
    'tasks?select="task_id";drop table public.t_canary',
    "tasks?select=metadata->>x');drop table public.t_canary;--",
    "tasks?task_id=eq.x');drop table public.t_canary;--",
    'tasks?task_id";drop table public.t_canary;--=eq.1',
    "tasks?order=task_id;drop table public.t_canary",
    "tasks?task_id=in.(a'),(b)",
    "tasks?metadata->>k'=eq.1",
]


@pytest.fixture
def canary(stack):
    stack.sql("create table if not exists public.t_canary (id int)")
    yield
    stack.sql("drop table if exists public.t_canary")


@pytest.mark.parametrize("query", INJECTIONS)
def test_injection_attempts_in_queries_are_harmless(stack, canary, query):
    add_task(stack, "t1")
    r = rest(stack, "GET", query)
    assert r.status_code in (200, 400), r.text  # a clear answer: rows matching a literal, or 400
    if r.status_code == 400:
        assert r.json()["code"] in ("PGRST100", "42703", "42601", "22P02", "42704")
    assert stack.sql("select to_regclass('public.t_canary') is not null as ok") == [{"ok": True}]
    assert stack.sql("select count(*) as n from tasks") == [{"n": 1}]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", 'tasks?columns="task_id);drop table public.t_canary;--"', [{"task_id": "x"}]),
        ("POST", "tasks?on_conflict=task_id)do nothing;drop table public.t_canary;--", {"task_id": "x"}),
        ("POST", "tasks", {'task_id") values (1);drop table public.t_canary;--': "x"}),
        ("PATCH", "tasks?task_id=eq.t1", {'title"=1;drop table public.t_canary;--': "x"}),
        ("POST", 'rpc/x");drop table public.t_canary;--', {}),
    ],
)
def test_injection_attempts_in_writes_are_harmless(stack, canary, method, path, body):
    add_task(stack, "t1")
    headers = {"Prefer": "resolution=merge-duplicates"} if "on_conflict" in path else {}
    r = rest(stack, method, path, json=body, headers=headers)
    assert 400 <= r.status_code < 500, r.text
    assert stack.sql("select to_regclass('public.t_canary') is not null as ok") == [{"ok": True}]
    assert stack.sql("select task_id, title from tasks") == [{"task_id": "t1", "title": None}]
