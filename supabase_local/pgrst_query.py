"""Parsing PostgREST's query language (select, filters, order, limit) into safe SQL.

Identifiers are quoted with psycopg.sql, values are bound parameters sent with the
``unknown`` type so PostgreSQL casts them to the column's type (a bad value is 22P02 → 400,
as with PostgREST's untyped literals).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import sql

from .errors import ApiError

RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})
_SIMPLE_OPS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
}
_IS_VALUES = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
_ITEM_RE = re.compile(r"^(?:(?P<alias>[^:()]+):(?!:))?(?P<field>[^:()]+?)(?:::(?P<cast>[A-Za-z_][\w ]*))?$")
_JSON_SPLIT = re.compile(r"(->>|->)")


def parse_error(message: str, details: str | None = None) -> ApiError:
    return ApiError(400, "PGRST100", message, details)


@dataclass
class Params:
    """Named parameters of one statement."""

    values: dict[str, object] = field(default_factory=dict)

    def add(self, value: object) -> sql.Placeholder:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


@dataclass(frozen=True)
class FieldRef:
    column: str
    json_path: tuple[tuple[str, str], ...] = ()  # (operator, key)

    @classmethod
    def parse(cls, text: str) -> FieldRef:
        parts = _JSON_SPLIT.split(text)
        column = parts[0].strip()
        if not column:
            raise parse_error(f'"failed to parse field ({text})"')
        path = tuple((parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2))
        if any(not key for _, key in path):
            raise parse_error(f'"failed to parse json path ({text})"')
        return cls(column, path)

    def to_sql(self, qualifier: sql.Composable | None) -> sql.Composable:
        ref: sql.Composable = sql.Identifier(self.column)
        if qualifier is not None:
            ref = sql.SQL("{}.{}").format(qualifier, ref)
        for op, key in self.json_path:
            k: sql.Composable = sql.Literal(int(key)) if re.fullmatch(r"-?\d+", key) else sql.Literal(key)
            ref = sql.SQL("({} " + op + " {})").format(ref, k)
        return ref

    @property
    def default_alias(self) -> str:
        return self.json_path[-1][1] if self.json_path else self.column


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and double quotes."""
    out, depth, quoted, cur = [], 0, False, []
    escaped = False
    for ch in text:
        if escaped:  # a backslash-escaped character inside quotes is plain text
            escaped = False
            cur.append(ch)
            continue
        if quoted and ch == "\\":
            escaped = True
            cur.append(ch)
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


# An embedded resource in select=: ``alias:relation!hint(inner select)``
_EMBED_RE = re.compile(
    r"^(?:(?P<alias>[^:()!]+):)?(?P<rel>[A-Za-z_]\w*)(?P<hint>![^()]*)?\((?P<inner>.*)\)$", re.S
)
# embed(alias, relation, hint, inner select) -> a scalar SQL subquery
Embedder = Callable[[str, str, str | None, str], sql.Composable]


def select_list(
    text: str | None, qualifier: sql.Composable | None, embed: Embedder | None = None
) -> sql.Composable:
    """``select=`` → a SQL select list; ``*`` (or nothing) selects every column."""
    if text is None or text.strip() in ("", "*"):
        return sql.SQL("{}.*").format(qualifier) if qualifier is not None else sql.SQL("*")
    items: list[sql.Composable] = []
    for raw in split_top_level(text):
        item = raw.strip()
        if item == "*":
            items.append(sql.SQL("{}.*").format(qualifier) if qualifier is not None else sql.SQL("*"))
            continue
        if "(" in item:
            m = _EMBED_RE.match(item)
            if not m:
                raise parse_error(f'"failed to parse select parameter ({text})"')
            if embed is None:
                raise ApiError(
                    400,
                    "PGRST100",
                    "Embedded resources are not supported here by the local Supabase stack",
                    f"select item {item!r}",
                    None,
                )
            alias = (m["alias"] or m["rel"]).strip()
            items.append(
                sql.SQL("{} AS {}").format(
                    embed(alias, m["rel"], m["hint"], m["inner"]), sql.Identifier(alias)
                )
            )
            continue
        m = _ITEM_RE.match(item)
        if not m:
            raise parse_error(f'"failed to parse select parameter ({text})"')
        ref = FieldRef.parse(m["field"])
        expr = ref.to_sql(qualifier)
        if m["cast"]:
            expr = sql.SQL("CAST({} AS {})").format(expr, sql.SQL(m["cast"]))
        alias = (m["alias"] or ref.default_alias).strip()
        items.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(alias)))
    return sql.SQL(", ").join(items)


def _parse_in_list(value: str) -> list[str]:
    if not (value.startswith("(") and value.endswith(")")):
        raise parse_error(f'"failed to parse filter (in.{value})"', 'expecting "(" and ")" around the list')
    inner = value[1:-1]
    items: list[str] = []
    i, cur, quoted, had_quotes = 0, [], False, False
    while i < len(inner):
        ch = inner[i]
        if quoted:
            if ch == "\\" and i + 1 < len(inner):
                cur.append(inner[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
            else:
                cur.append(ch)
        elif ch == '"':
            quoted, had_quotes = True, True
        elif ch == ",":
            items.append("".join(cur))
            cur, had_quotes = [], False
        else:
            cur.append(ch)
        i += 1
    if quoted:
        raise parse_error(f'"failed to parse filter (in.{value})"', "unterminated quoted value")
    if cur or had_quotes or items:
        items.append("".join(cur))
    return items


def filter_sql(
    column: str, expression: str, qualifier: sql.Composable | None, params: Params
) -> sql.Composable:
    """``col=[not.]op.value`` → a boolean SQL expression."""
    ref = FieldRef.parse(column).to_sql(qualifier)
    negate = False
    expr = expression
    if expr.startswith("not."):
        negate, expr = True, expr[4:]
    op, dot, value = expr.partition(".")
    if not dot:
        raise parse_error(
            f'"failed to parse filter ({expression})"',
            "unexpected end of input expecting operator (eq, gt, ...)",
        )
    if op in _SIMPLE_OPS:
        if op in ("like", "ilike"):
            value = value.replace("*", "%")
        cond = sql.SQL("{} " + _SIMPLE_OPS[op] + " {}").format(ref, params.add(value))
    elif op == "is":
        if value.lower() not in _IS_VALUES:
            raise parse_error(
                f'"failed to parse filter ({expression})"',
                "unexpected value for is: expecting null, not_null, true, false or unknown",
            )
        cond = sql.SQL("{} IS " + _IS_VALUES[value.lower()]).format(ref)
    elif op == "in":
        items = _parse_in_list(value)
        cond = (
            sql.SQL("{} IN ({})").format(ref, sql.SQL(", ").join(params.add(v) for v in items))
            if items
            else sql.SQL("FALSE")
        )
    else:
        raise parse_error(
            f'"failed to parse filter ({expression})"',
            f"unknown or unsupported operator {op!r} (the local stack supports "
            f"{', '.join(sorted([*_SIMPLE_OPS, 'is', 'in']))})",
        )
    return sql.SQL("NOT ({})").format(cond) if negate else cond


def where_sql(
    filters: list[tuple[str, str]], qualifier: sql.Composable | None, params: Params
) -> sql.Composable:
    conds: list[sql.Composable] = []
    for key, value in filters:
        if key in ("or", "not.or", "and", "not.and"):
            conds.append(_logic_sql(key, value, qualifier, params))
            continue
        if "." in _JSON_SPLIT.split(key)[0]:
            raise ApiError(
                400,
                "PGRST100",
                "Filters on embedded resources are not supported by the local Supabase stack",
                f"{key}={value}",
                "Filter the related table in its own query.",
            )
        conds.append(filter_sql(key, value, qualifier, params))
    return sql.SQL(" AND ").join(conds) if conds else sql.SQL("TRUE")


def _logic_sql(key: str, value: str, qualifier: sql.Composable | None, params: Params) -> sql.Composable:
    """``or=(col.op.value,col.op."quoted, value",col.in.(a,"b,c"),and(…))`` (or ``and=``), nestable."""
    if not (value.startswith("(") and value.endswith(")")):
        raise parse_error(f'"failed to parse logic tree ({value})"', 'expecting "(" and ")"')
    conds = []
    for item in split_top_level(value[1:-1]):
        nested = re.match(r"^((?:not\.)?(?:or|and))(\(.*\))$", item)
        if nested:  # a nested tree: or=(a.eq.1,and(b.gt.2,c.lt.3))
            conds.append(_logic_sql(nested[1], nested[2], qualifier, params))
            continue
        column, dot, expression = item.partition(".")
        if not dot:
            raise parse_error(f'"failed to parse logic tree ({value})"')
        conds.append(filter_sql(column, _unquote_value(expression), qualifier, params))
    joiner = " OR " if key.endswith("or") else " AND "
    tree = sql.SQL("({})").format(sql.SQL(joiner).join(conds))
    return sql.SQL("NOT {}").format(tree) if key.startswith("not.") else tree


def _unquote_value(expression: str) -> str:
    """Inside a logic tree a value may be double-quoted (with backslash escapes); in.(…) keeps its own."""
    negated = expression.startswith("not.")
    body = expression[4:] if negated else expression
    op, dot, val = body.partition(".")
    if op != "in" and len(val) >= 2 and val[0] == '"' and val[-1] == '"':
        val = re.sub(r"\\(.)", r"\1", val[1:-1])
    return ("not." if negated else "") + op + dot + val


def order_sql(text: str, qualifier: sql.Composable | None) -> sql.Composable:
    terms: list[sql.Composable] = []
    for raw in split_top_level(text):
        parts = raw.strip().split(".")
        ref = FieldRef.parse(parts[0]).to_sql(qualifier)
        mods = parts[1:]
        direction, nulls = "", ""
        for m in mods:
            if m in ("asc", "desc") and not direction:
                direction = " " + m.upper()
            elif m in ("nullsfirst", "nullslast") and not nulls:
                nulls = " NULLS FIRST" if m == "nullsfirst" else " NULLS LAST"
            else:
                raise parse_error(
                    f'"failed to parse order ({text})"',
                    'expecting "asc", "desc", "nullsfirst" or "nullslast"',
                )
        terms.append(sql.SQL("{}" + direction + nulls).format(ref))
    return sql.SQL(", ").join(terms)


def parse_int(name: str, value: str) -> int:
    if not re.fullmatch(r"\d+", value or ""):
        raise parse_error(f'"failed to parse {name} parameter ({value})"', "expecting a non-negative integer")
    return int(value)


def parse_columns(text: str) -> list[str]:
    cols = []
    for raw in split_top_level(text):
        c = raw.strip()
        if len(c) >= 2 and c[0] == '"' and c[-1] == '"':
            c = c[1:-1]
        if not c:
            raise parse_error(f'"failed to parse columns parameter ({text})"')
        cols.append(c)
    return cols
