"""Alert notifications: the webhook bodies (generic JSON, Slack, Feishu/Lark) and sending them.

Generic JSON (``format = "json"``)::

    {"source": "stepsdk", "status": "firing" | "resolved", "text": "...",
     "alert": {"key", "rule", "kind", "summary", "value", "threshold", "since", "at", "details"}}

Slack incoming webhooks take ``{"text": ...}``; Feishu/Lark custom bots take
``{"msg_type": "text", "content": {"text": ...}}``. A webhook URL is a secret (whoever has it can
post): it is never logged or shown, only its host.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import httpx

from stepsdk.ops.alerts import Event, Webhook

log = logging.getLogger("stepsdk.alerts")
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def text(event: Event) -> str:
    mark = "🔴 FIRING" if event.status == "firing" else "✅ RESOLVED"
    return f"[stepsdk] {mark} {event.rule}: {event.summary}"


def body(event: Event, fmt: str) -> dict[str, Any]:
    if fmt == "slack":
        return {"text": text(event)}
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": text(event)}}
    return {"source": "stepsdk", "status": event.status, "text": text(event), "alert": asdict(event)}


def send(webhook: Webhook, event: Event, client: httpx.Client) -> str | None:
    """POST the event; None when the receiver took it (2xx), else why not (never the URL)."""
    try:
        response = client.post(webhook.url, json=body(event, webhook.format))
    except httpx.HTTPError as exc:
        return f"{webhook.label}: {type(exc).__name__}"
    if not 200 <= response.status_code < 300:
        return f"{webhook.label}: HTTP {response.status_code}"
    if webhook.format == "feishu":  # Feishu answers 200 with a non-zero code on a refused message
        try:
            code = response.json().get("code", 0)
        except ValueError:
            code = 0
        if code not in (0, None):
            return f"{webhook.label}: refused (code {code})"
    return None


class Deliverer:
    """Sends each event to every webhook; the console output is the CLI's."""

    def __init__(self, webhooks: tuple[Webhook, ...], client: httpx.Client | None = None) -> None:
        self.webhooks = webhooks
        self.client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)

    def __call__(self, event: Event) -> list[str]:
        failures = []
        for webhook in self.webhooks:
            why = send(webhook, event, self.client)
            if why is not None:
                log.warning("alert %s (%s) not delivered: %s", event.rule, event.status, why)
                failures.append(why)
        return failures

    def close(self) -> None:
        self.client.close()
