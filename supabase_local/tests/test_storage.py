"""The local stack's Storage API, driven by the official client (storage3) and raw httpx."""

from __future__ import annotations

import hashlib
import logging

import httpx
import pytest
from storage3.exceptions import StorageApiError

from supabase_local import make_token

BUCKET = "step-screenshots"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L" + bytes(range(14))


def _files(stack):
    return stack.client().storage.from_(BUCKET)


def _raw(stack, method: str, path: str, **kw) -> httpx.Response:
    headers = {
        "apikey": stack.service_role_key,
        "Authorization": f"Bearer {stack.service_role_key}",
        **kw.pop("headers", {}),
    }
    return httpx.request(method, f"{stack.url}/storage/v1/{path}", headers=headers, timeout=10, **kw)


def test_upload_download_and_object_metadata(stack):
    files = _files(stack)
    res = files.upload("ab/one.webp", WEBP, {"content-type": "image/webp", "cache-control": "60"})
    assert (res.path, res.full_path) == ("ab/one.webp", f"{BUCKET}/ab/one.webp")
    assert files.download("ab/one.webp") == WEBP
    row = stack.sql("select * from storage.objects where name = 'ab/one.webp'")[0]
    meta = row["metadata"]
    assert meta["size"] == len(WEBP) and meta["mimetype"] == "image/webp"
    assert meta["cacheControl"] == "max-age=60"
    assert meta["eTag"] == f'"{hashlib.md5(WEBP).hexdigest()}"'
    assert row["path_tokens"] == ["ab", "one.webp"] and row["bucket_id"] == BUCKET
    r = _raw(stack, "GET", f"object/{BUCKET}/ab/one.webp")
    assert r.status_code == 200 and r.content == WEBP
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["etag"] == meta["eTag"] and r.headers["cache-control"] == "max-age=60"
    assert r.headers["accept-ranges"] == "bytes" and int(r.headers["content-length"]) == len(WEBP)
    head = _raw(stack, "HEAD", f"object/{BUCKET}/ab/one.webp")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(WEBP)))
    info = files.info("ab/one.webp")
    assert (
        info["size"] == len(WEBP) and info["content_type"] == "image/webp" and info["name"] == "ab/one.webp"
    )


def test_duplicate_upload_without_upsert_is_key_already_exists(stack):
    files = _files(stack)
    files.upload("ab/x.webp", WEBP, {"content-type": "image/webp"})
    with pytest.raises(StorageApiError) as e:
        files.upload("ab/x.webp", b"other", {"content-type": "image/webp"})
    assert (e.value.status, e.value.code) == ("409", "Duplicate")
    r = _raw(stack, "POST", f"object/{BUCKET}/ab/x.webp", files={"file": ("x.webp", b"z", "image/webp")})
    assert r.status_code == 400  # Storage answers every 4xx with HTTP 400 and the real status in the body
    assert r.json() == {
        "statusCode": "409",
        "code": "KeyAlreadyExists",
        "error": "Duplicate",
        "message": "The resource already exists",
    }
    assert files.download("ab/x.webp") == WEBP


def test_upsert_and_update_replace_the_bytes(stack):
    files = _files(stack)
    files.upload("ab/x.webp", WEBP, {"content-type": "image/webp"})
    files.upload("ab/x.webp", b"RIFF2", {"content-type": "image/webp", "upsert": "true"})
    assert files.download("ab/x.webp") == b"RIFF2"
    files.update("ab/x.webp", b"RIFF3", {"content-type": "image/png"})
    assert files.download("ab/x.webp") == b"RIFF3"
    assert stack.sql("select count(*) as n from storage.objects")[0]["n"] == 1
    # the replaced versions' files are gone: one object, one file on disk
    assert len(list((stack.root / "objects").iterdir())) == 1


def test_missing_objects_and_buckets(stack):
    files = _files(stack)
    with pytest.raises(StorageApiError) as e:
        files.download("no/such.webp")
    assert (e.value.status, e.value.code, e.value.message) == ("404", "not_found", "Object not found")
    assert files.exists("no/such.webp") is False
    r = _raw(stack, "GET", f"object/{BUCKET}/no/such.webp")
    assert r.status_code == 400 and r.json()["code"] == "NoSuchKey"
    with pytest.raises(StorageApiError) as e:
        stack.client().storage.from_("nope").upload("a.webp", WEBP, {"content-type": "image/webp"})
    assert (e.value.status, e.value.code) == ("404", "Bucket not found")
    with pytest.raises(StorageApiError) as e:
        stack.client().storage.get_bucket("nope")
    assert e.value.code == "Bucket not found"


def test_size_limit_and_mime_type_are_enforced(stack):
    sb = stack.client()
    sb.storage.create_bucket(
        "tiny", options={"public": False, "file_size_limit": 10, "allowed_mime_types": ["image/*"]}
    )
    tiny = sb.storage.from_("tiny")
    tiny.upload("ok.png", b"0123456789", {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as e:
        tiny.upload("big.png", b"0123456789A", {"content-type": "image/png"})
    assert (e.value.status, e.value.code) == ("413", "Payload too large")
    with pytest.raises(StorageApiError) as e:
        tiny.upload("t.txt", b"hi", {"content-type": "text/plain"})
    assert (e.value.status, e.value.code) == ("415", "invalid_mime_type")
    with pytest.raises(StorageApiError) as e:  # the migration's bucket allows webp/png/jpeg only
        _files(stack).upload("x.gif", b"GIF89a", {"content-type": "image/gif"})
    assert e.value.status == "415"
    assert stack.sql("select name from storage.objects") == [{"name": "ok.png"}]


@pytest.mark.parametrize(
    "key",
    [
        "a/../b.webp",
        "a/./b.webp",
        "bad\\key.webp",
        "tab\there.webp",
        "é/ü.webp",
        "nul\x00.webp",
        "k" * 1100 + ".webp",
    ],
)
def test_invalid_keys_are_rejected(stack, key):
    from urllib.parse import quote

    r = _raw(
        stack, "POST", f"object/{BUCKET}/{quote(key, safe='')}", files={"file": ("f", WEBP, "image/webp")}
    )
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidKey"
    assert stack.sql("select count(*) as n from storage.objects")[0]["n"] == 0


def test_signed_urls_single_batch_expiry_and_tampering(stack):
    files = _files(stack)
    files.upload("ab/s.webp", WEBP, {"content-type": "image/webp"})
    signed = files.create_signed_url("ab/s.webp", 60)
    assert signed["signedURL"].startswith(f"{stack.url}/storage/v1/object/sign/{BUCKET}/ab/s.webp?token=")
    r = httpx.get(signed["signedURL"])  # no apikey, no Authorization: the token is the credential
    assert r.status_code == 200 and r.content == WEBP and "expires" in r.headers
    dl = files.create_signed_url("ab/s.webp", 60, {"download": "pic.webp"})
    r = httpx.get(dl["signedURL"])
    assert r.headers["content-disposition"] == "attachment; filename=pic.webp; filename*=UTF-8''pic.webp"
    batch = files.create_signed_urls(["ab/s.webp", "ab/missing.webp"], 60)
    assert batch[0]["error"] is None and httpx.get(batch[0]["signedURL"]).content == WEBP
    assert batch[1]["error"] and batch[1]["signedURL"] is None
    with pytest.raises(StorageApiError) as e:
        files.create_signed_url("ab/missing.webp", 60)
    assert e.value.status == "404"
    token = signed["signedURL"].split("token=")[1]
    files.upload("ab/other.webp", b"RIFFother", {"content-type": "image/webp"})
    r = httpx.get(f"{stack.url}/storage/v1/object/sign/{BUCKET}/ab/other.webp?token={token}")
    assert r.status_code == 400 and r.json()["code"] == "InvalidSignature"
    expired = make_token(stack.jwt_secret, "x", expires_in=-5, url=f"{BUCKET}/ab/s.webp")
    r = httpx.get(f"{stack.url}/storage/v1/object/sign/{BUCKET}/ab/s.webp?token={expired}")
    assert r.status_code == 400 and r.json()["message"] == "jwt expired"
    forged = make_token("not-the-secret-but-long-enough-0000000", "x", url=f"{BUCKET}/ab/s.webp")
    r = httpx.get(f"{stack.url}/storage/v1/object/sign/{BUCKET}/ab/s.webp?token={forged}")
    assert r.status_code == 400 and r.content != WEBP


def test_list_remove_and_folders(stack):
    files = _files(stack)
    for key in ("run1/a.webp", "run1/b.webp", "run1/sub/c.webp", "run2/d.webp"):
        files.upload(key, WEBP, {"content-type": "image/webp"})
    listed = files.list("run1")
    assert [x["name"] for x in listed] == ["a.webp", "b.webp", "sub"]
    assert listed[2]["id"] is None and listed[0]["metadata"]["size"] == len(WEBP)
    assert [x["name"] for x in files.list("run1", {"limit": 1, "offset": 1})] == ["b.webp"]
    assert [x["name"] for x in files.list("run1", {"sortBy": {"column": "name", "order": "desc"}})] == [
        "sub",
        "b.webp",
        "a.webp",
    ]
    assert [x["name"] for x in files.list("run1", {"search": "b"})] == ["b.webp"]
    assert [x["name"] for x in files.list()] == ["run1", "run2"]
    removed = files.remove(["run1/a.webp", "run1/missing.webp"])
    assert [x["name"] for x in removed] == ["run1/a.webp"]
    assert stack.sql("select count(*) as n from storage.objects")[0]["n"] == 3
    r = _raw(stack, "DELETE", f"object/{BUCKET}", json={"prefixes": []})
    assert r.status_code == 400


def test_bucket_crud(stack):
    st = stack.client().storage
    assert st.create_bucket("pics", options={"public": True}) == {"name": "pics"}
    with pytest.raises(StorageApiError) as e:
        st.create_bucket("pics")
    assert (e.value.status, e.value.code) == ("409", "Duplicate")
    b = st.get_bucket("pics")
    assert (b.id, b.public, b.owner) == ("pics", True, "")
    raw = _raw(stack, "GET", "bucket/pics").json()
    assert raw["created_at"].endswith("Z") and raw["owner"] == "" and raw["allowed_mime_types"] is None
    assert {x.id for x in st.list_buckets()} == {"pics", BUCKET}
    st.from_("pics").upload("p.png", b"png", {"content-type": "image/png"})
    assert httpx.get(st.from_("pics").get_public_url("p.png")).content == b"png"
    r = httpx.get(f"{stack.url}/storage/v1/object/public/{BUCKET}/x.webp")
    assert r.status_code == 400 and r.json()["code"] == "NoSuchBucket"  # private buckets are not public
    with pytest.raises(StorageApiError) as e:
        st.delete_bucket("pics")
    assert e.value.status == "409"
    st.empty_bucket("pics")
    assert st.delete_bucket("pics") == {"message": "Successfully deleted"}
    with pytest.raises(StorageApiError):
        st.get_bucket("pics")
    r = _raw(stack, "POST", "bucket", json={"id": "bad/name"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidBucketName"


def test_storage_jwt_is_required_and_checked(stack):
    r = httpx.get(f"{stack.url}/storage/v1/object/{BUCKET}/a.webp")
    assert r.status_code == 400 and r.json()["statusCode"] == "400"
    bad = make_token("another-secret-that-is-long-enough-000", "service_role")
    r = httpx.get(f"{stack.url}/storage/v1/bucket", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 400 and r.json()["statusCode"] == "403"


def test_hostile_multipart_and_json_bodies(stack):
    r = _raw(
        stack,
        "POST",
        f"object/{BUCKET}/a.webp",
        content=b"--x\r\n\r\n--x--",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 400 and r.json()["statusCode"] == "400"
    r = _raw(
        stack, "POST", f"object/list/{BUCKET}", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = _raw(stack, "POST", f"object/list/{BUCKET}", json={"limit": -1})
    assert r.status_code == 400
    r = _raw(stack, "POST", f"object/sign/{BUCKET}/a.webp", json={"expiresIn": "soon"})
    assert r.status_code == 400


def test_raw_binary_upload_like_storage_js(stack):
    r = _raw(
        stack,
        "POST",
        f"object/{BUCKET}/raw/x.webp",
        content=WEBP,
        headers={"Content-Type": "image/webp", "x-upsert": "false"},
    )
    assert r.status_code == 200 and r.json()["Key"] == f"{BUCKET}/raw/x.webp"
    assert _files(stack).download("raw/x.webp") == WEBP


def test_signed_url_tokens_never_reach_the_logs(stack, caplog):
    files = _files(stack)
    files.upload("ab/log.webp", WEBP, {"content-type": "image/webp"})
    signed = files.create_signed_url("ab/log.webp", 60)["signedURL"]
    token = signed.split("token=")[1]
    with caplog.at_level(logging.DEBUG, logger="supabase_local"):
        assert httpx.get(signed).status_code == 200
    assert "/object/sign/" in caplog.text  # the request was logged…
    assert token not in caplog.text and stack.service_role_key not in caplog.text  # …without secrets


def test_sql_looking_keys_are_just_names(stack):
    """Storage's key rules allow quotes, semicolons and spaces: such a key is stored, not executed."""
    key = "x'; drop table storage.objects;--.webp"
    files = _files(stack)
    files.upload(key, WEBP, {"content-type": "image/webp"})
    assert files.download(key) == WEBP
    assert stack.sql("select name from storage.objects") == [{"name": key}]
