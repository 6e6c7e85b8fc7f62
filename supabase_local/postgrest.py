"""PostgREST emulation under ``/rest/v1``: the subset of v12+ that supabase-py uses.

One transaction per request, run as the JWT's role (see db.py); SQL shaped like PostgREST's so
PostgreSQL produces the same errors (constraint violations, RLS denials, bad literals).
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import pgrst_query as q
from .db import Database, DbUnavailable, RequestContext, RoleRejected
from .embed import Embedder
from .errors import ApiError, from_pg
from .http_types import Request, Response
from .jwt import JwtError, verify
from .schema import Function, SchemaCache, Table

log = logging.getLogger(__name__)

SINGULAR = "application/vnd.pgrst.object+json"
_SRC = sql.Identifier("pgrst_source")


def _reject_constant(name: str) -> object:
    """NaN/Infinity are not JSON (Python's json accepts them; PostgREST does not)."""
    raise ValueError(f"{name} is not valid JSON")


class _Rollback(Exception):
    """Raised inside a transaction to undo it and answer ``error`` instead."""

    def __init__(self, error: ApiError) -> None:
        self.error = error


@dataclass(frozen=True)
class Prefs:
    return_: str | None = None
    count: str | None = None
    resolution: str | None = None
    missing: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> Prefs:
        values: dict[str, str] = {}
        for token in (header or "").split(","):
            key, _, val = token.strip().partition("=")
            values[key.strip()] = val.strip()
        ret = values.get("return")
        count = values.get("count")
        res = values.get("resolution")
        return cls(
            return_=ret if ret in ("minimal", "representation", "headers-only") else None,
            count=count if count in ("exact", "planned", "estimated") else None,
            resolution=res if res in ("merge-duplicates", "ignore-duplicates") else None,
            missing=values.get("missing") if values.get("missing") in ("default", "null") else None,
        )

    def applied(self, mutation: bool) -> list[tuple[str, str]]:
        parts = []
        if mutation and self.resolution:
            parts.append(f"resolution={self.resolution}")
        if mutation and self.missing:
            parts.append(f"missing={self.missing}")
        if mutation and self.return_:
            parts.append(f"return={self.return_}")
        if self.count:
            parts.append(f"count={self.count}")
        return [("Preference-Applied", ", ".join(parts))] if parts else []


@dataclass
class _Ctx:
    req: Request
    rctx: RequestContext
    prefs: Prefs
    schema: str
    singular: bool


class PostgrestApi:
    def __init__(
        self, db: Database, cache: SchemaCache, jwt_secret: str, schemas: list[str], max_rows: int = 1000
    ) -> None:
        self.db = db
        self.cache = cache
        self.jwt_secret = jwt_secret
        self.schemas = schemas
        self.max_rows = max_rows

    # ----- entry point ---------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        ctx: _Ctx | None = None
        try:
            ctx = self._context(req)
            return self._dispatch(ctx)
        except ApiError as e:
            return e.response()
        except _Rollback as e:
            return e.error.response()
        except RoleRejected as e:
            diag = e.error.diag
            return ApiError(
                401,
                diag.sqlstate or "22023",
                diag.message_primary or str(e.error),
                diag.message_detail,
                None,
                [("WWW-Authenticate", "Bearer")],
            ).response()
        except DbUnavailable as e:
            status = 504 if e.code == "PGRST003" else 503
            return ApiError(
                status, e.code, "Database client error. Retrying the connection.", e.message
            ).response()
        except psycopg.OperationalError as e:
            if e.diag.sqlstate is None:  # connection-level failure
                return ApiError(
                    503, "PGRST001", "Database client error. Retrying the connection.", str(e)
                ).response()
            return from_pg(e, authed=self._authed(ctx)).response()
        except psycopg.Error as e:
            return from_pg(e, authed=self._authed(ctx)).response()

    @staticmethod
    def _authed(ctx: _Ctx | None) -> bool:
        """The request ran under a role from a verified JWT (not anon): decides 401 vs 403."""
        return ctx is not None and ctx.rctx.role != "anon"

    def _context(self, req: Request) -> _Ctx:
        # PostgREST reads only Authorization: an `apikey` alone (a legacy JWT key) means anon, as on
        # Supabase (pg_graphql#148). Opaque sb_… keys were already turned into a bearer by the edge.
        token = req.bearer()
        if token:
            try:
                claims = verify(self.jwt_secret, token)
            except JwtError as e:
                www = f'Bearer error="invalid_token", error_description="{e.message}"'
                raise ApiError(401, e.code, e.message, None, None, [("WWW-Authenticate", www)]) from e
            role, jwt_claims = claims.role, claims.claims
        else:
            role, jwt_claims = "anon", {}
        write = req.method not in ("GET", "HEAD")
        profile = req.header("content-profile" if write else "accept-profile") or self.schemas[0]
        if profile not in self.schemas:
            raise ApiError(
                406,
                "PGRST106",
                f"Invalid schema: {profile}",
                None,
                f"Only the following schemas are exposed: {', '.join(self.schemas)}",
            )
        accept = req.header("accept") or ""
        rctx = RequestContext(
            role=role,
            claims=jwt_claims,
            method=req.method,
            path="/rest/v1" + req.path,
            headers=dict(req.headers),
        )
        return _Ctx(req, rctx, Prefs.parse(req.header("prefer")), profile, SINGULAR in accept)

    def _dispatch(self, ctx: _Ctx) -> Response:
        path = ctx.req.path.strip("/")
        if not path:
            raise ApiError(404, "PGRST125", "Invalid path specified in request URL")
        if path.startswith("rpc/"):
            return self._rpc(ctx, path[4:])
        if "/" in path:
            raise ApiError(404, "PGRST125", "Invalid path specified in request URL")
        table = self._table(ctx.schema, path)
        method = ctx.req.method
        if method in ("GET", "HEAD"):
            return self._read(ctx, table)
        if method == "POST":
            return self._insert(ctx, table)
        if method == "PATCH":
            return self._update(ctx, table)
        if method == "DELETE":
            return self._delete(ctx, table)
        raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method}")

    def _table(self, schema: str, name: str) -> Table:
        table = self.cache.snapshot.tables.get((schema, name))
        if table is None:
            names = [t for s, t in self.cache.snapshot.tables if s == schema]
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"Perhaps you meant the table '{schema}.{near[0]}'" if near else None
            raise ApiError(
                404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache", None, hint
            )
        return table

    # ----- reads -----------------------------------------------------------------------
    def _split_params(self, ctx: _Ctx) -> tuple[dict[str, str], list[tuple[str, str]]]:
        reserved: dict[str, str] = {}
        filters: list[tuple[str, str]] = []
        for k, v in ctx.req.params:
            if k in q.RESERVED:
                reserved[k] = v
            else:
                filters.append((k, v))
        return reserved, filters

    def _read(self, ctx: _Ctx, table: Table) -> Response:
        reserved, filters = self._split_params(ctx)
        qual = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
        return self._select_from(ctx, qual, qual, reserved, filters, read_only=True, table=table)

    def _paging(self, reserved: dict[str, str]) -> tuple[int | None, int]:
        limit = q.parse_int("limit", reserved["limit"]) if "limit" in reserved else None
        offset = q.parse_int("offset", reserved["offset"]) if "offset" in reserved else 0
        limit = self.max_rows if limit is None else min(limit, self.max_rows)
        return limit, offset

    def _select_from(
        self,
        ctx: _Ctx,
        source: sql.Composable,
        qual: sql.Composable,
        reserved: dict[str, str],
        filters: list[tuple[str, str]],
        read_only: bool,
        params: q.Params | None = None,
        prelude: sql.Composable | None = None,
        table: Table | None = None,
    ) -> Response:
        params = params or q.Params()
        embed = Embedder(self.cache.snapshot, table, qual) if table is not None else None
        cols = q.select_list(reserved.get("select"), qual, embed)
        where = q.where_sql(filters, qual, params)
        order = (
            sql.SQL(" ORDER BY {}").format(q.order_sql(reserved["order"], qual))
            if "order" in reserved
            else sql.SQL("")
        )
        limit, offset = self._paging(reserved)
        page = sql.SQL("SELECT {cols} FROM {src} WHERE {where}{order} LIMIT {lim} OFFSET {off}").format(
            cols=cols, src=source, where=where, order=order, lim=sql.Literal(limit), off=sql.Literal(offset)
        )
        total = (
            sql.SQL("(SELECT count(*) FROM {src} WHERE {where})").format(src=source, where=where)
            if ctx.prefs.count
            else sql.SQL("NULL::bigint")
        )
        stmt = sql.SQL(
            "{pre}SELECT {total} AS total, count(*) AS n, "
            "coalesce(json_agg(_pgrst_t), '[]')::text AS body, "
            "(json_agg(_pgrst_t) -> 0)::text AS first FROM ({page}) _pgrst_t"
        ).format(pre=prelude or sql.SQL(""), total=total, page=page)
        with self.db.transaction(ctx.rctx, read_only=read_only) as conn:
            row = conn.execute(stmt, params.values).fetchone()
            assert row is not None
            return self._page_response(ctx, row, offset)

    def _page_response(self, ctx: _Ctx, row: dict, offset: int) -> Response:
        n, total = int(row["n"]), row["total"]
        if total is not None and offset > total:
            raise ApiError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                f"An offset of {offset} was requested, but there are only {total} rows.",
                headers=[("Content-Range", f"*/{total}")],
            )
        tot = "*" if total is None else str(total)
        crange = f"{offset}-{offset + n - 1}/{tot}" if n else f"*/{tot}"
        status = 206 if total is not None and n < total else 200
        body = self._body(ctx, n, row["body"], row["first"])
        headers = [("Content-Range", crange), *ctx.prefs.applied(mutation=False)]
        if ctx.req.method == "HEAD":
            return Response(status, b"", [("Content-Type", "application/json; charset=utf-8"), *headers])
        return Response.raw_json(status, body, headers)

    def _body(self, ctx: _Ctx, n: int, body: str, first: str | None) -> bytes:
        if ctx.singular:
            if n != 1:
                raise ApiError(
                    406,
                    "PGRST116",
                    "Cannot coerce the result to a single JSON object",
                    f"The result contains {n} rows",
                )
            return (first or "null").encode()
        return body.encode()

    # ----- writes ----------------------------------------------------------------------
    def _payload(self, ctx: _Ctx) -> object:
        raw = ctx.req.body
        ctype = (ctx.req.header("content-type") or "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "application/vnd.pgrst.object+json") and raw.strip():
            raise ApiError(
                415,
                "PGRST107",
                f"Content-Type not acceptable: {ctype}",
                "The local Supabase stack accepts JSON bodies only",
            )
        try:
            return json.loads(raw, parse_constant=_reject_constant) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "PGRST102", "Empty or invalid json", str(e)) from e

    def _payload_columns(
        self, ctx: _Ctx, table: Table, rows: list[dict], reserved: dict[str, str]
    ) -> list[str]:
        if "columns" in reserved:
            cols = q.parse_columns(reserved["columns"])
        elif rows:
            cols = list(rows[0].keys())
            if any(set(r.keys()) != set(cols) for r in rows[1:]):
                raise ApiError(400, "PGRST102", "All object keys must match")
        else:
            cols = []
        for c in cols:
            if c not in table.columns:
                raise ApiError(
                    400, "PGRST204", f"Could not find the '{c}' column of '{table.name}' in the schema cache"
                )
        return cols

    def _rows(self, ctx: _Ctx) -> list[dict]:
        payload = self._payload(ctx)
        rows = payload if isinstance(payload, list) else [payload]
        if payload is None or not all(isinstance(r, dict) for r in rows):
            raise ApiError(
                400,
                "PGRST102",
                "Empty or invalid json",
                "The body must be a JSON object or an array of JSON objects",
            )
        return rows

    def _recordset(
        self,
        table: Table,
        cols: list[str],
        body_ph: sql.Composable,
        missing_default: bool,
        fn: str = "json_to_recordset",
    ) -> sql.Composable:
        """``SELECT cols FROM json_to_recordset($body) AS _(col type, …)``."""
        defs = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(table.columns[c].type)) for c in cols
        )
        src: sql.Composable = sql.SQL("{}::json").format(body_ph)
        with_defaults = [c for c in cols if table.columns[c].default is not None]
        if missing_default and with_defaults:
            # PostgREST's missing=default: merge each column's default under the given keys.
            build = sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(c), sql.SQL(table.columns[c].default))
                for c in with_defaults
            )
            src = sql.SQL(
                "(SELECT json_agg(jsonb_build_object({}) || _e) FROM jsonb_array_elements({}::jsonb) _e)"
            ).format(build, body_ph)
        return sql.SQL("SELECT {cols} FROM " + fn + "({src}) AS _({defs})").format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols), src=src, defs=defs
        )

    def _returning(self, ctx: _Ctx, table: Table, extra: sql.Composable | None = None) -> sql.Composable:
        if ctx.prefs.return_ != "representation":
            return sql.SQL(" RETURNING 1")
        qual = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
        ret = sql.SQL(" RETURNING {}.*").format(qual)
        return sql.SQL("{}, {}").format(ret, extra) if extra is not None else ret

    def _mutation_result(
        self,
        ctx: _Ctx,
        table: Table,
        dml: sql.Composable,
        params: q.Params,
        reserved: dict[str, str],
        inserted_flag: bool = False,
    ) -> dict:
        rep = ctx.prefs.return_ == "representation"
        cols = (
            q.select_list(reserved.get("select"), _SRC, Embedder(self.cache.snapshot, table, _SRC))
            if rep
            else sql.SQL("1 AS one")
        )
        if rep and reserved.get("select") in (None, "", "*"):
            # expand * so the helper column that tells inserts from updates stays out of the body
            cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(_SRC, sql.Identifier(c)) for c in table.columns)
        ins = (
            sql.SQL("(SELECT count(*) FILTER (WHERE _pgrst_ins) FROM pgrst_source)")
            if inserted_flag and rep
            else sql.SQL("NULL::bigint")
        )
        if rep:
            inner = sql.SQL("SELECT {} FROM pgrst_source").format(cols)
            body = sql.SQL(
                "(SELECT coalesce(json_agg(_t), '[]')::text FROM ({inner}) _t) AS body, "
                "(SELECT (json_agg(_t) -> 0)::text FROM ({inner}) _t) AS first"
            ).format(inner=inner)
        else:
            body = sql.SQL("NULL::text AS body, NULL::text AS first")
        stmt = sql.SQL(
            "WITH pgrst_source AS ({dml}) SELECT (SELECT count(*) FROM pgrst_source) AS n, "
            "{ins} AS inserted, {body}"
        ).format(dml=dml, ins=ins, body=body)
        with self.db.transaction(ctx.rctx, read_only=False) as conn:
            row = conn.execute(stmt, params.values).fetchone()
            assert row is not None
            if ctx.singular and rep and row["n"] != 1:
                raise _Rollback(
                    ApiError(
                        406,
                        "PGRST116",
                        "Cannot coerce the result to a single JSON object",
                        f"The result contains {row['n']} rows",
                    )
                )
            return row

    def _insert(self, ctx: _Ctx, table: Table) -> Response:
        reserved, filters = self._split_params(ctx)
        rows = self._rows(ctx)
        cols = self._payload_columns(ctx, table, rows, reserved)
        params = q.Params()
        body_ph = params.add(json.dumps(rows))
        target = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
        if cols:
            select = self._recordset(table, cols, body_ph, ctx.prefs.missing == "default")
            ins = sql.SQL("INSERT INTO {t} ({cols}) {sel}").format(
                t=target, cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols), sel=select
            )
        else:  # {} or [{}, …]: every column takes its default
            ins = sql.SQL("INSERT INTO {t} SELECT FROM json_array_elements({b}::json)").format(
                t=target, b=body_ph
            )
        conflict = self._on_conflict(ctx, table, reserved, cols)
        flag = sql.SQL("(xmax = 0) AS _pgrst_ins")
        upsert = ctx.prefs.resolution == "merge-duplicates" and ctx.prefs.return_ == "representation"
        dml = sql.SQL("{}{}{}").format(ins, conflict, self._returning(ctx, table, flag if upsert else None))
        row = self._mutation_result(ctx, table, dml, params, reserved, inserted_flag=upsert)
        status = 200 if upsert and row["n"] and row["inserted"] == 0 else 201
        return self._write_response(ctx, status, row, crange=f"*/{row['n'] if ctx.prefs.count else '*'}")

    def _on_conflict(
        self, ctx: _Ctx, table: Table, reserved: dict[str, str], cols: list[str]
    ) -> sql.Composable:
        if ctx.prefs.resolution is None:
            return sql.SQL("")
        target_cols = (
            [c.strip() for c in reserved["on_conflict"].split(",")]
            if "on_conflict" in reserved
            else list(table.pk)
        )
        if not target_cols or not all(target_cols):
            return sql.SQL("")  # no primary key and no on_conflict: a plain insert, as PostgREST does
        target = sql.SQL(", ").join(sql.Identifier(c) for c in target_cols)
        if ctx.prefs.resolution == "ignore-duplicates":
            return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(target)
        sets = [c for c in cols]
        if not sets:
            return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(target)
        return sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
            target, sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in sets)
        )

    def _write_response(self, ctx: _Ctx, status: int, row: dict, crange: str) -> Response:
        headers = [("Content-Range", crange), *ctx.prefs.applied(mutation=True)]
        if ctx.prefs.return_ == "representation":
            body = self._body(ctx, int(row["n"]), row["body"], row["first"])
            return Response.raw_json(status, body, headers)
        return Response(status, b"", headers)

    def _update(self, ctx: _Ctx, table: Table) -> Response:
        reserved, filters = self._split_params(ctx)
        payload = self._payload(ctx)
        if not isinstance(payload, dict):
            raise ApiError(400, "PGRST102", "Empty or invalid json", "PATCH needs a JSON object")
        cols = self._payload_columns(ctx, table, [payload], reserved)
        params = q.Params()
        qual = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
        if not cols:  # nothing to set: PostgREST answers without touching a row
            row = {"n": 0, "body": "[]", "first": None}
            return self._write_response(
                ctx, 200 if ctx.prefs.return_ == "representation" else 204, row, "*/*"
            )
        body_ph = params.add(json.dumps(payload))
        rec = self._recordset(table, cols, body_ph, False, fn="json_to_record")
        where = q.where_sql(filters, qual, params)
        dml = sql.SQL("UPDATE {t} SET {sets} FROM ({rec}) AS pgrst_body WHERE {where}{ret}").format(
            t=qual,
            sets=sql.SQL(", ").join(sql.SQL("{0} = pgrst_body.{0}").format(sql.Identifier(c)) for c in cols),
            rec=rec,
            where=where,
            ret=self._returning(ctx, table),
        )
        row = self._mutation_result(ctx, table, dml, params, reserved)
        n = int(row["n"])
        tot = str(n) if ctx.prefs.count else "*"
        crange = f"0-{n - 1}/{tot}" if n else f"*/{tot}"
        return self._write_response(ctx, 200 if ctx.prefs.return_ == "representation" else 204, row, crange)

    def _delete(self, ctx: _Ctx, table: Table) -> Response:
        reserved, filters = self._split_params(ctx)
        params = q.Params()
        qual = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
        where = q.where_sql(filters, qual, params)
        dml = sql.SQL("DELETE FROM {t} WHERE {where}{ret}").format(
            t=qual, where=where, ret=self._returning(ctx, table)
        )
        row = self._mutation_result(ctx, table, dml, params, reserved)
        crange = f"*/{row['n'] if ctx.prefs.count else '*'}"
        return self._write_response(ctx, 200 if ctx.prefs.return_ == "representation" else 204, row, crange)

    # ----- rpc -------------------------------------------------------------------------
    def _rpc(self, ctx: _Ctx, name: str) -> Response:
        method = ctx.req.method
        if method not in ("GET", "HEAD", "POST"):
            raise ApiError(405, "PGRST101", "Only GET, HEAD and POST are allowed for functions")
        reserved, rest = self._split_params(ctx)
        if method == "POST":
            payload = self._payload(ctx)
            if payload is None:
                payload = {}
            filters = rest
        else:
            fns = self.cache.snapshot.functions.get((ctx.schema, name), [])
            argnames = {a.name for f in fns for a in f.args}
            payload = {k: v for k, v in rest if k in argnames}
            filters = [(k, v) for k, v in rest if k not in argnames]
        fn, whole_body = self._find_function(ctx.schema, name, payload)
        params = q.Params()
        if whole_body:
            call = sql.SQL("{}.{}({}::{})").format(
                sql.Identifier(fn.schema),
                sql.Identifier(fn.name),
                params.add(json.dumps(payload)),
                sql.SQL(fn.args[0].type),
            )
        else:
            assert isinstance(payload, dict)
            call = self._call_sql(fn, payload, params)
        read_only = method != "POST" or not fn.volatile
        if fn.returns_set and fn.kind == "composite":
            src = sql.SQL("{} AS _pgrst_src").format(call)
            return self._select_from(
                ctx, src, sql.Identifier("_pgrst_src"), reserved, filters, read_only, params
            )
        if fn.returns_set:
            src = sql.SQL("(SELECT _pgrst_v AS {} FROM {} AS _pgrst_v) AS _pgrst_src").format(
                sql.Identifier(fn.name), call
            )
            resp = self._select_from(
                ctx, src, sql.Identifier("_pgrst_src"), reserved, filters, read_only, params
            )
            if resp.status < 300 and resp.body:  # a set of scalars is an array of scalars
                resp.body = json.dumps(
                    [r[fn.name] for r in json.loads(resp.body)]
                    if not ctx.singular
                    else json.loads(resp.body)[fn.name],
                    separators=(",", ":"),
                ).encode()
            return resp
        with self.db.transaction(ctx.rctx, read_only=read_only) as conn:
            if fn.kind == "void":
                conn.execute(sql.SQL("SELECT {}").format(call), params.values)
                return Response(204, b"", [])
            if fn.kind == "composite":
                stmt = sql.SQL("SELECT row_to_json(_pgrst_t)::text AS body FROM {} AS _pgrst_t").format(call)
            else:
                stmt = sql.SQL("SELECT to_json({})::text AS body").format(call)
            row = conn.execute(stmt, params.values).fetchone()
        body = (row["body"] if row and row["body"] is not None else "null").encode()
        return Response.raw_json(200, body, [])

    def _find_function(self, schema: str, name: str, payload: object) -> tuple[Function, bool]:
        fns = self.cache.snapshot.functions.get((schema, name), [])
        keys = set(payload.keys()) if isinstance(payload, dict) else set()
        if isinstance(payload, dict):
            for fn in fns:
                if fn.accepts(keys) and not fn.single_unnamed_json:
                    return fn, False
        for fn in fns:
            if fn.single_unnamed_json:
                return fn, True
        arglist = ", ".join(sorted(keys))
        raise ApiError(
            404,
            "PGRST202",
            f"Could not find the function {schema}.{name}({arglist}) in the schema cache",
            f"Searched for the function {schema}.{name} with parameters {arglist} or with a single "
            "unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            "If a new function was created in the database with this name and parameters, "
            "try reloading the schema cache.",
        )

    def _call_sql(self, fn: Function, payload: dict, params: q.Params) -> sql.Composable:
        if not payload:
            return sql.SQL("{}.{}()").format(sql.Identifier(fn.schema), sql.Identifier(fn.name))
        types = {a.name: a.type for a in fn.args}
        body = params.add(json.dumps(payload))
        args = sql.SQL(", ").join(
            sql.SQL("{0} := (SELECT {0} FROM json_to_record({1}::json) AS _({0} {2}))").format(
                sql.Identifier(k), body, sql.SQL(types[k])
            )
            for k in payload
        )
        return sql.SQL("{}.{}({})").format(sql.Identifier(fn.schema), sql.Identifier(fn.name), args)
