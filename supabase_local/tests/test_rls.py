"""Row-level security and grants, enforced by PostgreSQL through the local stack's gateway."""

from __future__ import annotations

import hashlib
import time
import uuid

import httpx
import pytest
from postgrest import APIError
from storage3.exceptions import StorageApiError

ALICE = str(uuid.uuid4())
BOB = str(uuid.uuid4())
BUCKET = "step-screenshots"


def _seed(stack) -> dict[str, str]:
    """Two owners' tasks, a step and a screenshot (row + object) each, one ownerless task."""
    sb = stack.client()
    paths = {}
    for owner, task in ((ALICE, "ta"), (BOB, "tb"), (None, "tn")):
        sb.table("tasks").insert({"task_id": task, "owner_id": owner}).execute()
        step = str(uuid.uuid4())
        sb.table("task_steps").insert(
            {"id": step, "task_id": task, "step_number": 1, "step_type": "screenshot"}
        ).execute()
        data = f"RIFF{task}WEBP".encode()
        digest = hashlib.sha256(data).hexdigest()
        path = f"{digest[:2]}/{digest}.webp"
        sb.storage.from_(BUCKET).upload(path, data, {"content-type": "image/webp"})
        sb.table("step_screenshots").insert(
            {
                "task_id": task,
                "step_id": step,
                "screenshot_path": path,
                "file_size": len(data),
                "file_hash": digest,
            }
        ).execute()
        paths[task] = path
    return paths


def _user_client(stack, user: str):
    sb = stack.client(key=stack.anon_key)
    sb.postgrest.auth(stack.user_token(user))
    return sb


def _user_storage(stack, user: str):
    """Storage with the user's bearer (what supabase-py sends after sign-in)."""
    from storage3 import SyncStorageClient

    token = stack.user_token(user)
    return SyncStorageClient(
        f"{stack.url}/storage/v1/", {"apiKey": stack.anon_key, "Authorization": f"Bearer {token}"}
    )


def test_service_role_sees_everything(stack):
    _seed(stack)
    sb = stack.client()
    assert len(sb.table("tasks").select("task_id").execute().data) == 3
    assert len(sb.table("task_steps").select("id").execute().data) == 3
    assert len(sb.table("step_screenshots").select("id").execute().data) == 3
    assert len(sb.storage.from_(BUCKET).list("", {"limit": 100})) == 3  # three folders


def test_authenticated_user_sees_only_own_rows(stack):
    _seed(stack)
    for user, task in ((ALICE, "ta"), (BOB, "tb")):
        sb = _user_client(stack, user)
        assert [r["task_id"] for r in sb.table("tasks").select("task_id").execute().data] == [task]
        assert [r["task_id"] for r in sb.table("task_steps").select("task_id").execute().data] == [task]
        assert [r["task_id"] for r in sb.table("step_screenshots").select("task_id").execute().data] == [task]
        # a filter naming another user's task finds nothing rather than failing
        other = "tb" if task == "ta" else "ta"
        assert sb.table("tasks").select("*").eq("task_id", other).execute().data == []


def test_embedded_rows_are_filtered_by_rls_too(stack):
    _seed(stack)
    sb = _user_client(stack, ALICE)
    got = (
        sb.table("task_steps")
        .select("task_id,tasks(task_id,owner_id),step_screenshots(task_id)")
        .execute()
        .data
    )
    assert got == [
        {
            "task_id": "ta",
            "tasks": {"task_id": "ta", "owner_id": ALICE},
            "step_screenshots": [{"task_id": "ta"}],
        }
    ]
    stack.sql("update public.step_screenshots set task_id = 'tb' where task_id = 'ta'")  # now Bob's row
    got = sb.table("task_steps").select("task_id,step_screenshots(task_id)").execute().data
    assert got == [{"task_id": "ta", "step_screenshots": []}]


def test_authenticated_user_cannot_write(stack):
    _seed(stack)
    sb = _user_client(stack, ALICE)
    with pytest.raises(APIError) as e:
        sb.table("tasks").insert({"task_id": "mine"}).execute()
    assert e.value.code == "42501"
    r = httpx.patch(
        f"{stack.url}/rest/v1/tasks?task_id=eq.ta",
        json={"title": "x"},
        headers={"apikey": stack.anon_key, "Authorization": f"Bearer {stack.user_token(ALICE)}"},
    )
    assert r.status_code == 403 and r.json()["code"] == "42501"  # a JWT role: 403, not 401
    assert stack.sql("select title from tasks where task_id = 'ta'") == [{"title": None}]


def test_anon_sees_nothing_and_cannot_write(stack):
    _seed(stack)
    sb = stack.client(key=stack.anon_key)
    for table in ("tasks", "task_steps", "step_screenshots"):
        with pytest.raises(APIError) as e:
            sb.table(table).select("*").execute()
        assert e.value.code == "42501"  # the migration revoked anon's privileges outright
    r = httpx.post(
        f"{stack.url}/rest/v1/tasks",
        json={"task_id": "x"},
        headers={"apikey": stack.anon_key, "Authorization": f"Bearer {stack.anon_key}"},
    )
    assert r.status_code == 401 and r.json()["code"] == "42501"  # anon: 401, as PostgREST
    assert r.headers["www-authenticate"] == "Bearer"
    assert stack.sql("select count(*) as n from tasks")[0]["n"] == 3


def test_owner_id_defaults_to_the_callers_sub(stack):
    """auth.uid() reads request.jwt.claims, like Supabase's."""
    stack.sql(
        "create table public.t_notes (id serial primary key, who uuid default auth.uid(), "
        "role text default auth.role(), claims jsonb default auth.jwt());"
        " grant select, insert on public.t_notes to authenticated;"
        " grant usage on sequence public.t_notes_id_seq to authenticated"
    )
    try:
        r = httpx.post(
            f"{stack.url}/rest/v1/t_notes",
            json={},
            headers={
                "apikey": stack.anon_key,
                "Authorization": f"Bearer {stack.user_token(ALICE)}",
                "Prefer": "return=representation",
            },
        )
        for _ in range(600):  # the DDL's NOTIFY reloads the schema cache asynchronously
            if r.status_code != 404:
                break
            time.sleep(0.05)
            r = httpx.post(
                f"{stack.url}/rest/v1/t_notes",
                json={},
                headers={
                    "apikey": stack.anon_key,
                    "Authorization": f"Bearer {stack.user_token(ALICE)}",
                    "Prefer": "return=representation",
                },
            )
        assert r.status_code == 201, r.text
        row = r.json()[0]
        assert (row["who"], row["role"], row["claims"]["sub"]) == (ALICE, "authenticated", ALICE)
    finally:
        stack.sql("drop table public.t_notes")


def test_storage_objects_follow_task_ownership(stack):
    paths = _seed(stack)
    alice = _user_storage(stack, ALICE).from_(BUCKET)
    assert alice.download(paths["ta"]) == b"RIFFtaWEBP"
    for other in ("tb", "tn"):
        with pytest.raises(StorageApiError) as e:
            alice.download(paths[other])
        assert (e.value.status, e.value.code) == ("404", "not_found")
        assert alice.exists(paths[other]) is False
    assert alice.exists(paths["ta"]) is True
    listed = alice.list(paths["ta"][:2])
    assert [x["name"] for x in listed] == [paths["ta"].split("/")[1]]
    signed = alice.create_signed_url(paths["ta"], 60)
    assert httpx.get(signed["signedURL"]).content == b"RIFFtaWEBP"
    with pytest.raises(StorageApiError):
        alice.create_signed_url(paths["tb"], 60)


def test_storage_writes_need_the_service_role(stack):
    paths = _seed(stack)
    for client in (_user_storage(stack, ALICE), stack.client(key=stack.anon_key).storage):
        bucket = client.from_(BUCKET)
        with pytest.raises(StorageApiError) as e:
            bucket.upload("zz/new.webp", b"RIFF", {"content-type": "image/webp"})
        assert (e.value.status, e.value.code) == ("403", "Unauthorized")
        assert bucket.remove([paths["ta"]]) == []  # RLS hides the row: nothing deleted
    assert stack.sql("select count(*) as n from storage.objects")[0]["n"] == 3
    anon = stack.client(key=stack.anon_key).storage
    with pytest.raises(StorageApiError) as e:
        anon.create_bucket("mine")
    assert e.value.code == "Unauthorized"
    assert anon.list_buckets() == []  # buckets are hidden by RLS too


def test_opaque_api_keys_map_to_their_roles(stack):
    """sb_secret_… acts as service_role, sb_publishable_… as anon; a user JWT still wins."""
    _seed(stack)
    secret = stack.client(key=stack.secret_key)
    assert len(secret.table("tasks").select("task_id").execute().data) == 3
    assert secret.storage.from_(BUCKET).list("", {"limit": 10})
    publishable = stack.client(key=stack.publishable_key)
    with pytest.raises(APIError) as e:
        publishable.table("tasks").select("*").execute()
    assert e.value.code == "42501"
    publishable.postgrest.auth(stack.user_token(BOB))
    assert [r["task_id"] for r in publishable.table("tasks").select("task_id").execute().data] == ["tb"]
    r = httpx.get(f"{stack.url}/rest/v1/tasks", headers={"apikey": "sb_secret_forged"})
    assert r.status_code == 401 and r.json()["message"] == "Invalid API key"


def test_role_settings_apply_per_request(stack):
    """Supabase's statement_timeout per role (anon 3s, authenticated 8s) follows the JWT's role."""
    stack.sql(
        "create function public.t_timeout() returns text language sql stable "
        "as $$ select current_setting('statement_timeout') $$"
    )
    try:

        def timeout_for(key: str, token: str) -> httpx.Response:
            return httpx.post(
                f"{stack.url}/rest/v1/rpc/t_timeout",
                json={},
                headers={"apikey": key, "Authorization": f"Bearer {token}"},
            )

        for _ in range(600):  # the DDL's NOTIFY reloads the schema cache asynchronously
            if timeout_for(stack.anon_key, stack.anon_key).status_code == 200:
                break
            time.sleep(0.05)
        assert timeout_for(stack.anon_key, stack.anon_key).json() == "3s"
        assert timeout_for(stack.anon_key, stack.user_token(ALICE)).json() == "8s"
    finally:
        stack.sql("drop function public.t_timeout")


def test_user_token_rejects_non_uuid_ids(stack):
    with pytest.raises(ValueError, match="uuid"):
        stack.user_token("alice")
    with pytest.raises(TypeError):
        stack.user_token(42)  # type: ignore[arg-type]
