"""HS256 tokens as Supabase issues them (anon, service_role, user) and their verification."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt as pyjwt

# The secret `supabase start` uses; a dev-only value, never a real project's.
DEV_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
TEN_YEARS = 10 * 365 * 24 * 3600


class JwtError(Exception):
    """A token that must be refused; ``code`` is PostgREST's (PGRST301 or PGRST303)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def make_token(
    secret: str, role: str, *, sub: str | None = None, expires_in: int = TEN_YEARS, **extra: object
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"iss": "supabase-local", "role": role, "iat": now, "exp": now + expires_in}
    if sub is not None:
        claims.update(sub=sub, aud="authenticated")
    claims.update(extra)
    return pyjwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True)
class Claims:
    role: str
    claims: dict[str, object]


def verify(secret: str, token: str) -> Claims:
    """Verify an HS256 token; raise JwtError the way PostgREST words it."""
    try:
        claims = pyjwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
    except pyjwt.ExpiredSignatureError as e:
        raise JwtError("PGRST303", "JWT expired") from e
    except pyjwt.InvalidSignatureError as e:
        raise JwtError("PGRST301", "JWSError JWSInvalidSignature") from e
    except pyjwt.DecodeError as e:
        raise JwtError(
            "PGRST301",
            f"Expected 3 parts in JWT; got {token.count('.') + 1}"
            if token.count(".") != 2
            else "JWSError (CompactDecodeError Invalid token)",
        ) from e
    except pyjwt.InvalidTokenError as e:
        raise JwtError("PGRST301", str(e)) from e
    role = claims.get("role")
    if role is None:
        # PostgREST falls back to its anonymous role when the token names none.
        return Claims(role="anon", claims=claims)
    if not isinstance(role, str) or not role:
        raise JwtError("PGRST301", "JWT role claim must be a non-empty string")
    return Claims(role=role, claims=claims)
