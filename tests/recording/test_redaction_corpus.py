"""The redaction corpus: secret names and secret value shapes that must be caught, and
near-misses that must be kept, through the tracker's sanitizer, the integrations' summaries and
import (all three use ``stepsdk.recording.sanitize.RULES``). The counts of caught and kept are asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stepsdk.config import LEVEL_LIMITS
from stepsdk.integrations._common import summarize
from stepsdk.model import Level
from stepsdk.ops.import_ import TaskBundle, sanitize_bundles
from stepsdk.recording.sanitize import Sanitizer

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----"
)
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

# (name, value, caught: the secret must not survive; expected rule in the marker)
NAMES = [
    ("pwd", "hunter2", "pwd"),  # the six of the hostile review: pwd, passphrase, auth, otp ...
    ("passphrase", "correct horse battery staple", "passphrase"),
    ("auth", "s3cr3t-value", "auth"),
    ("otp", "492817", "otp"),
    ("password", "hunter2", "password"),
    ("userPassword", "hunter2", "password"),
    ("db-passwd", "hunter2", "passwd"),
    ("pin", 1234, "pin"),  # a number, and still a secret
    ("card_cvv", 123, "cvv"),
    ("cvv2", "123", "cvv"),
    ("signature", "ab12cd34", "signature"),
    ("x-amz-signature", "ab12cd34", "signature"),
    ("jwt", "opaque", "jwt"),
    ("private_key", "opaque", "privatekey"),
    ("privateKey", "opaque", "privatekey"),
    ("client_secret", "opaque", "clientsecret"),
    ("refreshToken", "opaque", "refreshtoken"),
    ("api-key", "opaque", "apikey"),
    ("x-api-key", "opaque", "apikey"),
    ("Authorization", "opaque", "authorization"),
    ("set-cookie", "a=b", "cookie"),
    ("session_id", "abc", "session"),
    ("aws_credentials", {"id": "x"}, "credential"),
    ("key", "opaque", "key"),
]
KEPT_NAMES = [
    ("author", "Ann Smith"),  # word boundaries: author is not auth
    ("authors", ["Ann", "Bob"]),
    ("tokenizer", "cl100k_base"),
    ("max_tokens", 512),  # a token count is a number under a token-like name
    ("prompt_tokens", 20),
    ("secretary", "Ms Jones"),
    ("passenger", "Bob"),
    ("design", "flat"),
    ("opinion", "fine"),
    ("spinner", "visible"),
    ("sort_key", "created_at"),
    ("primary_key", "id"),
    ("keyboard", "qwerty"),
    ("has_pin", True),  # booleans are kept
]
# (value inside an innocent key, the rule named in its marker, the secret part that must go)
VALUES = [
    ("Basic dXNlcjpwYXNzd29yZA==", "basic_auth", "dXNlcjpwYXNzd29yZA=="),  # the review's Basic value
    (
        f"config: {PEM} end",
        "private_key",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    ),  # ... and PEM
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n(cut)",
        "private_key",
        "b3BlbnNzaC1rZXktdjEAAAAA",
    ),
    (f"token={JWT}", "jwt", JWT),
    ("Authorization: Bearer abcdef0123456789xyz", "bearer", "abcdef0123456789xyz"),
    ("postgres://app:s3cretpw@db.internal:5432/x", "url_password", "s3cretpw"),
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("ghp_" + "a1B2c3D4e5" * 4, "github_token", "ghp_" + "a1B2c3D4e5" * 4),
    ("xoxb-123456789012-abcdefghij", "slack_token", "xoxb-123456789012-abcdefghij"),
    ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe_key", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8t", "api_key", "Ab3dEf6hIj9kLm2nOp5qRs8t"),
    ("sk-ant-api03-" + "x" * 30, "api_key", "x" * 30),
    ("AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google_api_key", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("sb_secret_" + "N7UND0UgjKTVK-Uodkm0Hg", "supabase_key", "N7UND0UgjKTVK-Uodkm0Hg"),
]
KEPT_VALUES = [
    "basic information about the plan",  # "basic" followed by a word, not base64 of user:pass
    "Basic plan costs 10 USD",
    "bearer of bad news",
    "see https://example.com/path?q=1",  # a URL without credentials
    "mailto:ann@example.com",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",  # public, not a private key
    "eyJhbGciOi is only half a token",
    "risk-free and ask-me-anything",  # "sk-" inside words
    "The AKIA prefix alone",
    "max_tokens=512 temperature=0.2",
    "tap the ghost icon",
]


def _hidden(out: object, secret: object) -> bool:
    return isinstance(out, str) and out.startswith("[REDACTED:") and str(secret) not in out


@pytest.fixture(scope="module")
def sanitizer() -> Sanitizer:
    return Sanitizer(LEVEL_LIMITS[Level.DETAILED])


def test_corpus_counts(sanitizer: Sanitizer) -> None:
    assert len(NAMES) + len(KEPT_NAMES) + len(VALUES) + len(KEPT_VALUES) >= 40
    caught = kept = 0
    missed: list[str] = []
    for name, value, rule in NAMES:
        for out in (sanitizer.value({name: value})[name], summarize({name: value})[name]):
            if out == f"[REDACTED:{rule}]":
                caught += 1
            else:
                missed.append(f"name {name!r} -> {out!r}")
    for name, value in KEPT_NAMES:
        for out in (sanitizer.value({name: value})[name], summarize({name: value})[name]):
            if out == value:
                kept += 1
            else:
                missed.append(f"kept name {name!r} -> {out!r}")
    for text, rule, secret in VALUES:
        out = sanitizer.value({"note": text})["note"]
        if f"[REDACTED:{rule}]" in out and secret not in out:
            caught += 1
        else:
            missed.append(f"value {text[:30]!r} -> {out[:80]!r}")
    for text in KEPT_VALUES:
        out = sanitizer.value({"note": text})["note"]
        if out == text:
            kept += 1
        else:
            missed.append(f"kept value {text[:30]!r} -> {out[:80]!r}")
    assert missed == []
    assert (
        (caught, kept) == (2 * len(NAMES) + len(VALUES), 2 * len(KEPT_NAMES) + len(KEPT_VALUES)) == (62, 39)
    )


def test_import_uses_the_same_rules() -> None:
    step = {
        "id": "s1",
        "step_data": {"pwd": "hunter2", "author": "Ann", "h": "Basic dXNlcjpwYXNzd29yZA=="},
        "thinking": f"key is {PEM}",
        "metadata": {},
    }
    bundle = TaskBundle({"task_id": "t", "metadata": {}}, [step], [])
    assert sanitize_bundles([bundle]) == 1
    assert step["step_data"] == {"pwd": "[REDACTED:pwd]", "author": "Ann", "h": "Basic [REDACTED:basic_auth]"}
    assert step["thinking"] == "key is [REDACTED:private_key]"


def test_users_add_names_and_patterns_from_the_environment() -> None:
    code = (
        "from stepsdk.config import LEVEL_LIMITS\nfrom stepsdk.model import Level\n"
        "from stepsdk.recording.sanitize import Sanitizer\nimport stepsdk\n"
        "stepsdk.add_redaction_rules(names=['iban'], patterns={'ticket': r'TCK-[0-9]{6}'})\n"
        "s = Sanitizer(LEVEL_LIMITS[Level.DETAILED])\n"
        "print(s.value({'employee_no': 'E1', 'Iban': 'DE89', 'n': 'call ORD-123456 TCK-654321'}))\n"
    )
    env = {
        **os.environ,
        "STEPSDK_REDACT_NAMES": "employee_no",
        "STEPSDK_REDACT_PATTERNS": '{"order": "ORD-[0-9]{6}"}',
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == (
        "{'employee_no': '[REDACTED:employeeno]', 'Iban': '[REDACTED:iban]', "
        "'n': 'call [REDACTED:order] [REDACTED:ticket]'}"
    )
