"""JSON API of the operations views: token usage (and cost), error categories, active alerts.
Answers use the ``{"data": ...}`` envelope of the documented routes. Registered before
:mod:`stepsdk.viewer.api` (whose catch-all 404 route would otherwise shadow these)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query
from nicegui import app

from stepsdk.ops import alerts as _alerts
from stepsdk.ops.prices import PriceError, PriceTable

from .api import TaskId, install_error_handler  # the encoded task-id path parameter of the main API
from .data.base import ERROR_CATEGORIES, DataSource, Row

log = logging.getLogger("stepsdk.viewer.api")
Category = Literal[(*ERROR_CATEGORIES, "none")]  # type: ignore[valid-type]


def load_prices() -> PriceTable | None:
    """The price table of the environment (STEPSDK_PRICES or the two price variables), or None;
    a malformed table is logged and ignored (tokens are still shown)."""
    try:
        return PriceTable.load()
    except PriceError as exc:
        log.warning("viewer: price table ignored: %s", exc)
        return None


def with_cost(row: Row, prices: PriceTable | None) -> Row:
    cost = (
        prices.cost(
            row.get("model"), int(row.get("prompt_tokens") or 0), int(row.get("completion_tokens") or 0)
        )
        if prices
        else None
    )
    return {**row, "cost": cost}


def usage_totals(days: list[Row], prices: PriceTable | None) -> Row:
    totals: Row = {
        k: sum(int(r.get(k) or 0) for r in days)
        for k in ("steps_with_usage", "prompt_tokens", "completion_tokens", "total_tokens")
    }
    totals["cost"] = (
        prices.cost(None, totals["prompt_tokens"], totals["completion_tokens"]) if prices else None
    )
    return totals


def register(source: DataSource, prices: PriceTable | None = None) -> None:
    install_error_handler()  # SourceUnavailable → 503 (viewer/api.py maps every StepSDKError)

    @app.get(
        "/api/usage", tags=["stepsdk"], summary="Tokens per day and the tasks that used the most (with cost)"
    )
    def usage(
        days: Annotated[int, Query(ge=1, le=3660)] = 7, top: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> dict[str, Any]:
        daily = source.daily_usage(days)
        tasks = [with_cost(r, prices) for r in source.tasks_by_usage(top)]
        return {
            "data": {
                "days": daily,
                "totals": usage_totals(daily, prices),
                "tasks": tasks,
                "currency": prices.currency if prices else None,
            }
        }

    @app.get("/api/tasks/{task_id}/usage", tags=["stepsdk"], summary="A task's tokens (and cost)")
    def task_usage(task_id: TaskId) -> dict[str, Any]:
        row = source.task_usage(task_id)
        if row is None:
            raise HTTPException(404, detail="task not found")
        return {"data": {**with_cost(row, prices), "currency": prices.currency if prices else None}}

    @app.get("/api/errors", tags=["stepsdk"], summary="Failed steps per error category, and the latest ones")
    def errors(
        category: Category | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        return {
            "data": {"categories": source.error_categories(), "steps": source.failed_steps(category, limit)}
        }

    @app.get(
        "/api/alerts", tags=["stepsdk"], summary="The alerts active after the last `stepsdk alerts check`"
    )
    def alerts() -> dict[str, Any]:
        checked_at, active = _alerts.active_alerts(_alerts.viewer_state_file())
        return {"data": {"checked_at": checked_at, "active": active}}
