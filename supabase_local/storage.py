"""Supabase Storage emulation under ``/storage/v1``: buckets, objects, signed URLs.

Metadata lives in ``storage.buckets``/``storage.objects`` and every query on them runs under
the request's role, so the RLS policies of the migrations decide (service_role bypasses them).
Object bytes are files named by the object's version (a fresh uuid per write) in the stack's
temp dir: a row points at its bytes only once both exist, and an overwritten version's file
is removed after the commit.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote

import jwt as pyjwt
import psycopg

from .db import Database, DbUnavailable, RequestContext, RoleRejected
from .http_types import Request, Response
from .jwt import JwtError, verify

log = logging.getLogger(__name__)

GLOBAL_FILE_SIZE_LIMIT = 50 * 1024 * 1024
# Storage's isValidKey/isValidBucketName; JavaScript's \w is ASCII-only, hence re.ASCII.
_KEY_RE = re.compile(r"^(\w|/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)
_BUCKET_RE = re.compile(r"^(\w|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)


# Storage's own deletes pass its protect_delete trigger (platform.sql); direct SQL deletes do not.
ALLOW_DELETE = "select set_config('storage.allow_delete_query', 'true', true)"


class StorageError(Exception):
    """Storage's envelope; the HTTP status is 400 for every 4xx semantic status, as upstream."""

    def __init__(self, status: int, code: str, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.error, self.message = status, code, error, message

    def response(self) -> Response:
        http = 500 if self.status >= 500 else 400
        return Response.json(
            http,
            {"statusCode": str(self.status), "code": self.code, "error": self.error, "message": self.message},
        )


def no_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def no_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "not_found", "Object not found")


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Upload:
    data: bytes
    mimetype: str
    cache_control: str
    user_metadata: dict | None


def _parse_multipart(req: Request) -> _Upload:
    ctype = req.header("content-type") or ""
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body
        )
        fields: dict[str, str] = {}
        file_part = None
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None or name == "file":
                file_part = part
            elif name:
                fields[name] = (
                    part.get_content()
                    if part.get_content_type().startswith("text")
                    else part.get_payload(decode=True).decode()
                )
        if file_part is None:
            raise StorageError(400, "InvalidRequest", "Invalid Input", "No file part in the form")
        data = file_part.get_payload(decode=True) or b""
        mimetype = (
            file_part.get_content_type() if file_part.get("content-type") else "text/plain;charset=UTF-8"
        )
        meta = None
        if fields.get("metadata"):
            try:
                meta = json.loads(fields["metadata"])
            except ValueError as e:
                raise StorageError(400, "InvalidRequest", "Invalid Input", "metadata must be JSON") from e
        return _Upload(data, mimetype, fields.get("cacheControl", "3600"), meta)
    # a raw binary body (what storage-js sends for Blob uploads)
    return _Upload(req.body, ctype or "text/plain;charset=UTF-8", req.header("cache-control") or "3600", None)


def _max_age(cache_control: str) -> str:
    return cache_control if "=" in cache_control else f"max-age={cache_control}"


class StorageApi:
    def __init__(self, db: Database, jwt_secret: str, objects_dir: Path) -> None:
        self.db = db
        self.jwt_secret = jwt_secret
        self.dir = objects_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    # ----- entry point ---------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except StorageError as e:
            return e.response()
        except RoleRejected as e:
            return StorageError(
                403, "AccessDenied", "Unauthorized", e.error.diag.message_primary or ""
            ).response()
        except DbUnavailable as e:
            return StorageError(503, "DatabaseError", "Database unavailable", e.message).response()
        except psycopg.Error as e:
            return self._pg_error(e).response()

    def _pg_error(self, e: psycopg.Error) -> StorageError:
        state = e.diag.sqlstate or ""
        if state == "42501":
            return StorageError(
                403, "AccessDenied", "Unauthorized", "new row violates row-level security policy"
            )
        if state == "23505":
            return StorageError(409, "KeyAlreadyExists", "Duplicate", "The resource already exists")
        if state.startswith("22") or state.startswith("23"):
            return StorageError(400, "InvalidRequest", "Invalid Input", e.diag.message_primary or str(e))
        log.warning("storage database error: %s", e)
        return StorageError(500, "DatabaseError", "Internal Server Error", "Internal Server Error")

    def _ctx(self, req: Request, plain_download: bool = False) -> RequestContext:
        token = req.bearer()
        if not token:
            raise StorageError(
                400, "InvalidJWT", "Error", "headers must have required property 'authorization'"
            )
        try:
            claims = verify(self.jwt_secret, token)
        except JwtError as e:
            if e.code != "PGRST303":
                raise StorageError(403, "AccessDenied", "Unauthorized", "invalid signature") from e
            # Hosted Storage: an expired token is AccessDenied (jose's message), and on the plain
            # `GET /object/<bucket>/<key>` the bucket is simply not found; never InvalidJWT here.
            if plain_download:
                raise no_bucket() from e
            raise StorageError(
                403, "AccessDenied", "Unauthorized", '"exp" claim timestamp check failed'
            ) from e
        return RequestContext(
            claims.role, claims.claims, req.method, "/storage/v1" + req.path, dict(req.headers)
        )

    def _service(self, req: Request) -> RequestContext:
        """Storage's ``asSuperUser()``: bucket limits are read regardless of the caller's RLS."""
        return RequestContext("service_role", {"role": "service_role"}, req.method, req.path, {})

    def _dispatch(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p != ""]
        m = req.method
        if not parts:
            raise StorageError(404, "NotFound", "Not Found", "Route not found")
        if parts[0] == "bucket":
            return self._buckets(req, parts[1:])
        if parts[0] == "object":
            return self._objects(req, parts[1:])
        raise StorageError(404, "NotFound", "Not Found", f"Route {m}:{req.path} not found")

    # ----- buckets ---------------------------------------------------------------------
    def _buckets(self, req: Request, rest: list[str]) -> Response:
        ctx = self._ctx(req)
        m = req.method
        if not rest and m == "GET":
            with self.db.transaction(ctx, read_only=True) as conn:
                rows = conn.execute("select * from storage.buckets order by name").fetchall()
            return Response.json(200, [self._bucket_json(r) for r in rows])
        if not rest and m == "POST":
            return self._create_bucket(req, ctx)
        if len(rest) == 1 and m == "GET":
            with self.db.transaction(ctx, read_only=True) as conn:
                row = conn.execute("select * from storage.buckets where id = %s", (rest[0],)).fetchone()
            if row is None:
                raise no_bucket()
            return Response.json(200, self._bucket_json(row))
        if len(rest) == 1 and m == "PUT":
            return self._update_bucket(req, ctx, rest[0])
        if len(rest) == 1 and m == "DELETE":
            with self.db.transaction(ctx, read_only=False) as conn:
                if conn.execute(
                    "select 1 from storage.objects where bucket_id = %s limit 1", (rest[0],)
                ).fetchone():
                    raise StorageError(
                        409,
                        "ResourceNotEmpty",
                        "ResourceNotEmpty",
                        "The bucket you tried to delete is not empty",
                    )
                conn.execute(ALLOW_DELETE)
                if not conn.execute(
                    "delete from storage.buckets where id = %s returning id", (rest[0],)
                ).fetchone():
                    raise no_bucket()
            return Response.json(200, {"message": "Successfully deleted"})
        if len(rest) == 2 and rest[1] == "empty" and m == "POST":
            with self.db.transaction(ctx, read_only=False) as conn:
                if not conn.execute("select 1 from storage.buckets where id = %s", (rest[0],)).fetchone():
                    raise no_bucket()
                conn.execute(ALLOW_DELETE)
                gone = conn.execute(
                    "delete from storage.objects where bucket_id = %s returning version", (rest[0],)
                ).fetchall()
            self._unlink(r["version"] for r in gone)
            return Response.json(200, {"message": "Successfully emptied"})
        raise StorageError(404, "NotFound", "Not Found", f"Route {m}:/bucket/{'/'.join(rest)} not found")

    def _bucket_json(self, r: dict) -> dict:
        return {
            "id": r["id"],
            "name": r["name"],
            "owner": str(r["owner"] or r["owner_id"] or ""),
            "public": bool(r["public"]),
            "file_size_limit": r["file_size_limit"],
            "allowed_mime_types": r["allowed_mime_types"],
            "created_at": _iso(r["created_at"]),
            "updated_at": _iso(r["updated_at"]),
        }

    def _json_body(self, req: Request) -> dict:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError as e:
            raise StorageError(400, "InvalidRequest", "Invalid Input", "Body is not valid JSON") from e
        if not isinstance(body, dict):
            raise StorageError(400, "InvalidRequest", "Invalid Input", "Body must be a JSON object")
        return body

    def _bucket_options(self, body: dict) -> tuple[bool, int | None, list[str] | None]:
        public = body.get("public", False)
        limit = body.get("file_size_limit")
        mimes = body.get("allowed_mime_types")
        if not isinstance(public, bool):
            raise StorageError(400, "InvalidRequest", "Invalid Input", "public must be a boolean")
        if isinstance(limit, str):
            limit = self._parse_size(limit)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise StorageError(400, "InvalidRequest", "Invalid Input", "file_size_limit must be a size")
        if mimes is not None and (not isinstance(mimes, list) or not all(isinstance(x, str) for x in mimes)):
            raise StorageError(400, "InvalidRequest", "Invalid Input", "allowed_mime_types must be strings")
        return public, limit, mimes

    @staticmethod
    def _parse_size(text: str) -> int:
        m = re.fullmatch(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*", text.lower())
        if not m:
            raise StorageError(
                400, "InvalidRequest", "Invalid Input", f"file_size_limit {text!r} is not a size"
            )
        mult = {"b": 1, None: 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}[m[2]]
        return int(m[1]) * mult

    def _create_bucket(self, req: Request, ctx: RequestContext) -> Response:
        body = self._json_body(req)
        bid = body.get("id") or body.get("name")
        if not isinstance(bid, str) or not bid or len(bid) > 100 or not _BUCKET_RE.match(bid):
            raise StorageError(400, "InvalidBucketName", "Invalid Input", "Bucket name invalid")
        public, limit, mimes = self._bucket_options(body)
        try:
            with self.db.transaction(ctx, read_only=False) as conn:
                conn.execute(
                    "insert into storage.buckets (id, name, owner, public, file_size_limit, "
                    "allowed_mime_types) values (%s, %s, %s, %s, %s, %s)",
                    (bid, body.get("name") or bid, self._sub_uuid(ctx), public, limit, mimes),
                )
        except psycopg.errors.UniqueViolation as e:
            raise StorageError(409, "BucketAlreadyExists", "Duplicate", "The resource already exists") from e
        return Response.json(200, {"name": bid})

    def _update_bucket(self, req: Request, ctx: RequestContext, bid: str) -> Response:
        body = self._json_body(req)
        public, limit, mimes = self._bucket_options(body)
        with self.db.transaction(ctx, read_only=False) as conn:
            if not conn.execute(
                "update storage.buckets set public = %s, file_size_limit = %s, "
                "allowed_mime_types = %s, updated_at = now() where id = %s returning id",
                (public, limit, mimes, bid),
            ).fetchone():
                raise no_bucket()
        return Response.json(200, {"message": "Successfully updated"})

    @staticmethod
    def _sub_uuid(ctx: RequestContext) -> str | None:
        sub = ctx.claims.get("sub")
        try:
            return str(uuid.UUID(str(sub))) if sub else None
        except ValueError:
            return None

    # ----- objects ---------------------------------------------------------------------
    def _objects(self, req: Request, rest: list[str]) -> Response:
        m = req.method
        if rest and rest[0] == "sign" and m == "GET":
            return self._serve_signed(req, rest[1:])
        if rest and rest[0] in ("public",) and m == "GET":
            return self._serve_public(req, rest[1:])
        ctx = self._ctx(
            req, plain_download=m == "GET" and bool(rest) and rest[0] not in ("authenticated", "info")
        )
        if rest and rest[0] == "authenticated" and m == "GET":
            rest = rest[1:]
        if rest and rest[0] == "sign" and m == "POST":
            if len(rest) == 2:
                return self._sign_many(req, ctx, rest[1])
            return self._sign_one(req, ctx, *self._bucket_key(rest[1:]))
        if rest and rest[0] == "list" and m == "POST" and len(rest) == 2:
            return self._list(req, ctx, rest[1])
        if rest and rest[0] == "info" and m == "GET":
            rest = rest[1:]
            if rest and rest[0] == "authenticated":
                rest = rest[1:]
            return self._info(ctx, *self._bucket_key(rest))
        if len(rest) == 1 and m == "DELETE":
            return self._remove(req, ctx, rest[0])
        if m in ("POST", "PUT"):
            bucket, key = self._bucket_key(rest)
            # PUT (update) creates or replaces, as Storage's; POST replaces only with x-upsert: true
            return self._upload(req, ctx, bucket, key, upsert=m == "PUT" or req.header("x-upsert") == "true")
        if m in ("GET", "HEAD"):
            bucket, key = self._bucket_key(rest)
            return self._download(req, ctx, bucket, key)
        raise StorageError(404, "NotFound", "Not Found", f"Route {m}:/object/{'/'.join(rest)} not found")

    @staticmethod
    def _bucket_key(rest: list[str]) -> tuple[str, str]:
        if len(rest) < 2:
            raise StorageError(400, "InvalidKey", "InvalidKey", "Invalid key: " + "/".join(rest[1:]))
        key = "/".join(rest[1:])
        if not _KEY_RE.match(key) or any(seg in (".", "..") for seg in rest[1:]) or len(key) > 1024:
            raise StorageError(400, "InvalidKey", "InvalidKey", f"Invalid key: {key}")
        return rest[0], key

    def _bucket(self, req: Request, bucket: str) -> dict:
        with self.db.transaction(self._service(req), read_only=True) as conn:
            row = conn.execute("select * from storage.buckets where id = %s", (bucket,)).fetchone()
        if row is None:
            raise no_bucket()
        return row

    def _check_limits(self, bucket: dict, up: _Upload) -> None:
        limit = min(x for x in (bucket["file_size_limit"], GLOBAL_FILE_SIZE_LIMIT) if x is not None)
        if len(up.data) > limit:
            raise StorageError(
                413, "EntityTooLarge", "Payload too large", "The object exceeded the maximum allowed size"
            )
        allowed = bucket["allowed_mime_types"]
        if allowed:
            base = up.mimetype.split(";")[0].strip().lower()
            ok = any(
                base == a.lower() or (a.endswith("/*") and base.startswith(a[:-1].lower())) for a in allowed
            )
            if not ok:
                raise StorageError(
                    415, "InvalidMimeType", "invalid_mime_type", f"mime type {base} is not supported"
                )

    def _upload(self, req: Request, ctx: RequestContext, bucket: str, key: str, upsert: bool) -> Response:
        b = self._bucket(req, bucket)
        up = _parse_multipart(req)
        self._check_limits(b, up)
        version = str(uuid.uuid4())
        path = self.dir / version
        path.write_bytes(up.data)
        md5 = hashlib.md5(up.data).hexdigest()
        now = datetime.now(UTC)
        meta = {
            "eTag": f'"{md5}"',
            "size": len(up.data),
            "mimetype": up.mimetype,
            "cacheControl": _max_age(up.cache_control),
            "lastModified": _iso(now),
            "contentLength": len(up.data),
            "httpStatusCode": 200,
        }
        conflict = (
            "on conflict (bucket_id, name) do update set metadata = excluded.metadata, "
            "user_metadata = excluded.user_metadata, version = excluded.version, owner = excluded.owner, "
            "owner_id = excluded.owner_id, updated_at = now(), last_accessed_at = now() "
            if upsert
            else ""
        )
        try:
            with self.db.transaction(ctx, read_only=False) as conn:
                old = (
                    conn.execute(
                        "select version from storage.objects where bucket_id = %s and name = %s",
                        (bucket, key),
                    ).fetchone()
                    if upsert
                    else None
                )
                row = conn.execute(
                    "insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, "
                    "version) values (%s, %s, %s, %s, %s, %s, %s) " + conflict + "returning id",
                    (
                        bucket,
                        key,
                        self._sub_uuid(ctx),
                        ctx.claims.get("sub"),
                        json.dumps(meta),
                        json.dumps(up.user_metadata) if up.user_metadata is not None else None,
                        version,
                    ),
                ).fetchone()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if old and old["version"]:
            self._unlink([old["version"]])
        return Response.json(200, {"Id": str(row["id"]) if row else None, "Key": f"{bucket}/{key}"})

    def _find(self, ctx: RequestContext, bucket: str, key: str) -> dict:
        with self.db.transaction(ctx, read_only=True) as conn:
            row = conn.execute(
                "select * from storage.objects where bucket_id = %s and name = %s", (bucket, key)
            ).fetchone()
        if row is None:
            raise no_key()
        return row

    def _object_response(
        self, req: Request, row: dict, extra: list[tuple[str, str]] | None = None
    ) -> Response:
        meta = row["metadata"] or {}
        path = self.dir / str(row["version"])
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise no_key() from e
        headers = [
            ("Content-Type", meta.get("mimetype", "application/octet-stream")),
            ("ETag", meta.get("eTag", "")),
            ("Cache-Control", meta.get("cacheControl", "no-cache")),
            ("Last-Modified", (row["updated_at"] or datetime.now(UTC)).strftime("%a, %d %b %Y %H:%M:%S GMT")),
            ("Accept-Ranges", "bytes"),
            ("Content-Length", str(len(data))),
            *(extra or []),
        ]
        download = parse_qs(req.query, keep_blank_values=True).get("download")
        if download is not None:
            name = download[0]
            headers.append(
                (
                    "Content-Disposition",
                    f"attachment; filename={quote(name)}; filename*=UTF-8''{quote(name)}"
                    if name
                    else "attachment;",
                )
            )
        return Response(200, b"" if req.method == "HEAD" else data, headers)

    def _download(self, req: Request, ctx: RequestContext, bucket: str, key: str) -> Response:
        return self._object_response(req, self._find(ctx, bucket, key))

    def _serve_public(self, req: Request, rest: list[str]) -> Response:
        bucket, key = self._bucket_key(rest)
        b = self._bucket(req, bucket)
        if not b["public"]:
            raise no_bucket()
        return self._object_response(req, self._find(self._service(req), bucket, key))

    def _info(self, ctx: RequestContext, bucket: str, key: str) -> Response:
        row = self._find(ctx, bucket, key)
        meta = row["metadata"] or {}
        return Response.json(
            200,
            {
                "id": str(row["id"]),
                "name": row["name"],
                "version": row["version"],
                "bucket_id": row["bucket_id"],
                "size": meta.get("size"),
                "content_type": meta.get("mimetype"),
                "cache_control": meta.get("cacheControl"),
                "etag": meta.get("eTag"),
                "metadata": row["user_metadata"] or {},
                "last_modified": _iso(row["updated_at"]),
                "created_at": _iso(row["created_at"]),
            },
        )

    def _remove(self, req: Request, ctx: RequestContext, bucket: str) -> Response:
        prefixes = self._json_body(req).get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise StorageError(
                400, "InvalidRequest", "Invalid Input", "body/prefixes must be a non-empty array of strings"
            )
        with self.db.transaction(ctx, read_only=False) as conn:
            conn.execute(ALLOW_DELETE)
            rows = conn.execute(
                "delete from storage.objects where bucket_id = %s and name = any(%s) returning *",
                (bucket, prefixes),
            ).fetchall()
        self._unlink(r["version"] for r in rows)
        return Response.json(
            200, [self._object_json(r, r["name"]) | {"bucket_id": r["bucket_id"]} for r in rows]
        )

    @staticmethod
    def _object_json(r: dict, name: str) -> dict:
        return {
            "name": name,
            "id": str(r["id"]),
            "updated_at": _iso(r["updated_at"]),
            "created_at": _iso(r["created_at"]),
            "last_accessed_at": _iso(r["last_accessed_at"]),
            "metadata": r["metadata"],
        }

    def _list(self, req: Request, ctx: RequestContext, bucket: str) -> Response:
        body = self._json_body(req)
        prefix = body.get("prefix") or ""
        search = body.get("search") or ""
        limit, offset = body.get("limit", 100), body.get("offset", 0)
        sort = body.get("sortBy") or {"column": "name", "order": "asc"}
        if (
            not all(isinstance(x, int) and x >= 0 for x in (limit, offset))
            or not isinstance(prefix, str)
            or not isinstance(search, str)
            or not isinstance(sort, dict)
        ):
            raise StorageError(400, "InvalidRequest", "Invalid Input", "limit/offset must be integers >= 0")
        column = sort.get("column", "name")
        if column not in ("name", "created_at", "updated_at", "last_accessed_at"):
            raise StorageError(400, "InvalidRequest", "Invalid Input", f"cannot sort by {column!r}")
        base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        like = (base + search).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.db.transaction(ctx, read_only=True) as conn:
            rows = conn.execute(
                "select * from storage.objects where bucket_id = %s and name ilike %s", (bucket, like)
            ).fetchall()
        items: dict[str, dict] = {}
        for r in rows:
            rel = r["name"][len(base) :]
            head, slash, _ = rel.partition("/")
            if slash:
                items.setdefault(
                    head,
                    {
                        "name": head,
                        "id": None,
                        "updated_at": None,
                        "created_at": None,
                        "last_accessed_at": None,
                        "metadata": None,
                    },
                )
            else:
                items[rel] = self._object_json(r, rel)
        desc = str(sort.get("order", "asc")).lower() == "desc"
        ordered = sorted(items.values(), key=lambda it: (it[column] is None, it[column] or ""), reverse=desc)
        return Response.json(200, ordered[offset : offset + min(limit, 1500)])

    # ----- signed URLs -----------------------------------------------------------------
    def _expires(self, body: dict) -> int:
        raw = body.get("expiresIn")
        try:
            n = int(raw)  # supabase-py sends it as a string
        except (TypeError, ValueError) as e:
            raise StorageError(
                400, "InvalidRequest", "Invalid Input", "expiresIn must be an integer >= 1"
            ) from e
        if n < 1:
            raise StorageError(400, "InvalidRequest", "Invalid Input", "expiresIn must be an integer >= 1")
        return n

    def _sign(self, bucket: str, key: str, expires: int) -> str:
        now = int(time.time())
        token = pyjwt.encode(
            {"url": f"{bucket}/{key}", "iat": now, "exp": now + expires}, self.jwt_secret, algorithm="HS256"
        )
        return f"/object/sign/{bucket}/{quote(key)}?token={token}"

    def _sign_one(self, req: Request, ctx: RequestContext, bucket: str, key: str) -> Response:
        expires = self._expires(self._json_body(req))
        self._find(ctx, bucket, key)
        return Response.json(200, {"signedURL": self._sign(bucket, key, expires)})

    def _sign_many(self, req: Request, ctx: RequestContext, bucket: str) -> Response:
        body = self._json_body(req)
        expires = self._expires(body)
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise StorageError(
                400, "InvalidRequest", "Invalid Input", "paths must be a non-empty array of strings"
            )
        with self.db.transaction(ctx, read_only=True) as conn:
            found = {
                r["name"]
                for r in conn.execute(
                    "select name from storage.objects where bucket_id = %s and name = any(%s)",
                    (bucket, paths),
                )
            }
        return Response.json(
            200,
            [
                {"error": None, "path": p, "signedURL": self._sign(bucket, p, expires)}
                if p in found
                else {
                    "error": "Either the object does not exist or you do not have access to it",
                    "path": p,
                    "signedURL": None,
                }
                for p in paths
            ],
        )

    def _serve_signed(self, req: Request, rest: list[str]) -> Response:
        bucket, key = self._bucket_key(rest)
        token = (parse_qs(req.query).get("token") or [""])[0]
        if not token:
            raise StorageError(
                400, "InvalidRequest", "Invalid Input", "querystring must have required property 'token'"
            )
        try:
            claims = pyjwt.decode(token, self.jwt_secret, algorithms=["HS256"])
        except pyjwt.ExpiredSignatureError as e:
            raise StorageError(400, "InvalidJWT", "InvalidJWT", "jwt expired") from e
        except pyjwt.InvalidTokenError as e:
            raise StorageError(400, "InvalidJWT", "InvalidJWT", "invalid signature") from e
        if claims.get("url") != f"{bucket}/{key}":
            raise StorageError(
                400, "InvalidSignature", "InvalidSignature", "The url do not match the signature"
            )
        row = self._find(self._service(req), bucket, key)
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        return self._object_response(req, row, [("Expires", expires)])

    def _unlink(self, versions: object) -> None:
        for v in versions:  # type: ignore[attr-defined]
            if v:
                (self.dir / str(v)).unlink(missing_ok=True)
