"""Plain request/response values passed between the gateway and the API emulators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl


@dataclass
class Request:
    method: str
    path: str  # percent-decoded path under the API prefix, e.g. "/tasks"
    query: str  # raw query string
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    @property
    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def bearer(self) -> str | None:
        auth = self.header("authorization")
        if auth is None:
            return None
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, value: object, headers: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return cls.raw_json(status, body, headers)

    @classmethod
    def raw_json(cls, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, body, [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])
