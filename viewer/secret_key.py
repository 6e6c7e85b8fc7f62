"""Is a Supabase key a secret (service role) key? Decides what the viewer offers (delete)."""

from __future__ import annotations

import base64
import binascii
import json


def is_secret_key(key: str) -> bool:
    """A Supabase secret key (``sb_secret_...``) or a legacy JWT key whose role is service_role.
    The JWT is only read, not verified: it decides what the viewer offers; Supabase decides
    what the key may really do."""
    if key.startswith("sb_secret_"):
        return True
    parts = key.split(".")
    if len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(claims, dict) and claims.get("role") == "service_role"
