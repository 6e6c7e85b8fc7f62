"""PostgREST's schema cache: tables, columns and functions of the exposed schemas.

Reloaded on ``NOTIFY pgrst, 'reload schema'`` (a LISTEN on a dedicated connection); the
platform's event triggers send that NOTIFY after every DDL statement, as on Supabase.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), usable in SQL
    default: str | None  # pg_get_expr() of the default, SQL text from the catalog
    nullable: bool


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, Column]
    pk: tuple[str, ...]


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    args: tuple[Arg, ...]
    return_type: str
    returns_set: bool
    kind: str  # "void" | "scalar" | "composite"
    volatile: bool

    def accepts(self, keys: set[str]) -> bool:
        names = {a.name for a in self.args}
        required = {a.name for a in self.args if not a.has_default}
        return keys <= names and required <= keys

    @property
    def single_unnamed_json(self) -> bool:
        return len(self.args) == 1 and self.args[0].name == "" and self.args[0].type in ("json", "jsonb")


@dataclass(frozen=True)
class ForeignKey:
    name: str
    schema: str
    table: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass
class Snapshot:
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    functions: dict[tuple[str, str], list[Function]] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    # ALTER ROLE … SET settings, applied when a request impersonates the role (PostgREST v12+)
    role_settings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


_TABLES_SQL = """
select n.nspname as schema, c.relname as name, a.attname as col, format_type(a.atttypid, a.atttypmod) as type,
       pg_get_expr(d.adbin, d.adrelid) as "default", not a.attnotnull as nullable,
       coalesce(a.attnum = any(i.indkey), false) as is_pk
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum and a.attgenerated = ''
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'f', 'p')
order by n.nspname, c.relname, a.attnum
"""

_FUNCS_SQL = """
select n.nspname as schema, p.proname as name, p.proretset as returns_set, p.provolatile as volatility,
       format_type(p.prorettype, null) as return_type, t.typtype as ret_typtype,
       coalesce(p.proargnames, '{}') as argnames, coalesce(p.proargmodes::text[], '{}') as argmodes,
       p.proallargtypes, p.proargtypes::oid[] as in_types, p.pronargs, p.pronargdefaults,
       array(select format_type(x, null) from unnest(p.proargtypes) with ordinality u(x, o) order by o)
         as in_type_names,
       p.prorettype = 'record'::regtype or p.proargmodes is not null and 't' = any(p.proargmodes::text[])
         as returns_table
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type t on t.oid = p.prorettype
where n.nspname = any(%(schemas)s) and p.prokind = 'f'
"""


_ROLE_SETTINGS_SQL = """
select r.rolname as role, split_part(c, '=', 1) as name, substr(c, strpos(c, '=') + 1) as value
from pg_db_role_setting s
join pg_roles r on r.oid = s.setrole
cross join lateral unnest(s.setconfig) c
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
order by s.setdatabase
"""


_FKS_SQL = """
select c.conname as name, n1.nspname as schema, t1.relname as "table",
       n2.nspname as ref_schema, t2.relname as ref_table,
       array(select a.attname from unnest(c.conkey) with ordinality k(n, o)
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o)::text[] as columns,
       array(select a.attname from unnest(c.confkey) with ordinality k(n, o)
             join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o)::text[] as ref_columns
from pg_constraint c
join pg_class t1 on t1.oid = c.conrelid join pg_namespace n1 on n1.oid = t1.relnamespace
join pg_class t2 on t2.oid = c.confrelid join pg_namespace n2 on n2.oid = t2.relnamespace
where c.contype = 'f' and n1.nspname = any(%(schemas)s) and n2.nspname = any(%(schemas)s)
order by c.conname
"""


def _load(conn: psycopg.Connection, schemas: list[str]) -> Snapshot:
    snap = Snapshot()
    for r in conn.execute(_FKS_SQL, {"schemas": schemas}).fetchall():
        snap.foreign_keys.append(
            ForeignKey(
                r["name"],
                r["schema"],
                r["table"],
                tuple(r["columns"]),
                r["ref_schema"],
                r["ref_table"],
                tuple(r["ref_columns"]),
            )
        )
    for r in conn.execute(_ROLE_SETTINGS_SQL).fetchall():
        snap.role_settings.setdefault(r["role"], []).append((r["name"], r["value"]))
    cols: dict[tuple[str, str], dict[str, Column]] = {}
    pks: dict[tuple[str, str], list[str]] = {}
    for r in conn.execute(_TABLES_SQL, {"schemas": schemas}).fetchall():
        key = (r["schema"], r["name"])
        cols.setdefault(key, {})[r["col"]] = Column(r["col"], r["type"], r["default"], r["nullable"])
        if r["is_pk"]:
            pks.setdefault(key, []).append(r["col"])
    for key, c in cols.items():
        snap.tables[key] = Table(key[0], key[1], c, tuple(pks.get(key, ())))
    for r in conn.execute(_FUNCS_SQL, {"schemas": schemas}).fetchall():
        fn = _function(r)
        snap.functions.setdefault((fn.schema, fn.name), []).append(fn)
    return snap


def _function(r: dict) -> Function:
    names: list[str] = list(r["argnames"])
    modes: list[str] = list(r["argmodes"])
    in_names = [n for i, n in enumerate(names) if not modes or modes[i] in ("i", "b", "v")]
    types: list[str] = list(r["in_type_names"])
    n_in, n_def = r["pronargs"], r["pronargdefaults"]
    args = tuple(
        Arg(in_names[i] if i < len(in_names) else "", types[i], i >= n_in - n_def) for i in range(n_in)
    )
    if r["return_type"] == "void":
        kind = "void"
    elif r["ret_typtype"] == "c" or r["returns_table"]:
        kind = "composite"
    else:
        kind = "scalar"
    return Function(
        r["schema"], r["name"], args, r["return_type"], r["returns_set"], kind, r["volatility"] == "v"
    )


class SchemaCache:
    """The current snapshot plus a listener thread that reloads it on NOTIFY pgrst."""

    def __init__(self, admin_dsn: str, schemas: list[str]) -> None:
        self.admin_dsn = admin_dsn
        self.schemas = schemas
        self.reloads = 0
        self._snap = Snapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reload_lock = threading.Lock()
        self.reload()

    @property
    def busy(self) -> bool:
        """A reload is running right now."""
        return self._reload_lock.locked()

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def reload(self) -> None:
        with self._reload_lock:
            with psycopg.connect(self.admin_dsn, autocommit=True, row_factory=dict_row) as conn:
                self._snap = _load(conn, self.schemas)
            self.reloads += 1
        log.debug("schema cache reloaded (%d tables)", len(self._snap.tables))

    def start_listener(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, args=(ready,), name="pgrst-listener", daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _listen(self, ready: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                    conn.execute("LISTEN pgrst")
                    ready.set()
                    while not self._stop.is_set():
                        got = [n.payload for n in conn.notifies(timeout=0.2)]
                        if any(p in ("", "reload schema") for p in got):
                            self.reload()
            except psycopg.Error as e:  # the database went away for a moment: listen again
                log.warning("schema listener lost its connection: %s", e)
                ready.set()
                self._stop.wait(0.5)
