"""Embedded resources in ``select=`` (``tasks?select=*,task_steps(id,step_number)``), one FK deep per level.

A relationship is a foreign key between the two tables: the child's key pointing at the parent
gives an array (one-to-many), the parent's key pointing at the child gives an object or null
(many-to-one). Each embed is a correlated scalar subquery run under the request's role, so RLS
filters embedded rows exactly as it filters top-level ones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from psycopg import sql

from .errors import ApiError
from .pgrst_query import select_list
from .schema import ForeignKey, Snapshot, Table


@dataclass
class Embedder:
    snapshot: Snapshot
    parent: Table
    parent_qual: sql.Composable
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __call__(self, alias: str, rel: str, hint: str | None, inner: str) -> sql.Composable:
        if hint:
            raise ApiError(
                400,
                "PGRST100",
                "Embedding hints (!fk, !inner, !left) are not supported by the local Supabase stack",
                f"{rel}{hint}",
                None,
            )
        child = self.snapshot.tables.get((self.parent.schema, rel))
        fk, to_many = self._relationship(child, rel)
        assert child is not None
        n = next(self.counter)
        t_alias, r_alias = sql.Identifier(f"_pgrst_e{n}"), sql.Identifier(f"_pgrst_r{n}")
        cols = select_list(inner, t_alias, Embedder(self.snapshot, child, t_alias, self.counter))
        pairs = zip(fk.columns, fk.ref_columns, strict=True)
        # to-many: child.fk_col = parent.ref_col; to-one: child.ref_col = parent.fk_col
        conds = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(
                t_alias,
                sql.Identifier(c if to_many else rc),
                self.parent_qual,
                sql.Identifier(rc if to_many else c),
            )
            for c, rc in pairs
        )
        source = sql.SQL("SELECT {} FROM {}.{} AS {} WHERE {}").format(
            cols, sql.Identifier(child.schema), sql.Identifier(child.name), t_alias, conds
        )
        if to_many:
            return sql.SQL("(SELECT coalesce(json_agg({r}), '[]'::json) FROM ({src}) AS {r})").format(
                r=r_alias, src=source
            )
        return sql.SQL("(SELECT row_to_json({r}) FROM ({src} LIMIT 1) AS {r})").format(r=r_alias, src=source)

    def _relationship(self, child: Table | None, rel: str) -> tuple[ForeignKey, bool]:
        p = self.parent
        found: list[tuple[ForeignKey, bool]] = []
        if child is not None:
            for fk in self.snapshot.foreign_keys:
                if (fk.schema, fk.table) == (child.schema, child.name) and (fk.ref_schema, fk.ref_table) == (
                    p.schema,
                    p.name,
                ):
                    found.append((fk, True))
                elif (fk.schema, fk.table) == (p.schema, p.name) and (fk.ref_schema, fk.ref_table) == (
                    child.schema,
                    child.name,
                ):
                    found.append((fk, False))
        if not found:
            raise ApiError(
                400,
                "PGRST200",
                f"Could not find a relationship between '{p.name}' and '{rel}' in the schema cache",
                f"Searched for a foreign key relationship between '{p.name}' and "
                f"'{rel}' in the schema '{p.schema}', but no matches were found.",
                None,
            )
        if len(found) > 1:
            raise ApiError(
                300,
                "PGRST201",
                f"Could not embed because more than one relationship was found for '{p.name}' and '{rel}'",
                ", ".join(fk.name for fk, _ in found),
                "The local Supabase stack does not support embedding hints",
            )
        return found[0]
