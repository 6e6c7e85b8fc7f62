"""The documented response shapes of the JSON API, for ``/openapi.json``.

The persistence guide documents ``{"data": {...}}`` envelopes for a task's steps, report and
screenshots; these models describe them. Step, task and screenshot rows keep every column of
the schema (they are open objects here), the pagination and the statistics are exact.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Pagination(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int


class StepsPage(BaseModel):
    steps: list[dict[str, Any]]
    pagination: Pagination


class StepsResponse(BaseModel):
    data: StepsPage


class ReportStatistics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total_steps: int
    successful_steps: int
    failed_steps: int
    success_rate: float | None
    total_duration_ms: float
    average_step_duration_ms: float | None
    screenshots_count: int


class Report(BaseModel):
    task: dict[str, Any]
    steps: list[dict[str, Any]]
    screenshots: list[dict[str, Any]]
    statistics: ReportStatistics


class ReportResponse(BaseModel):
    data: Report


class Screenshots(BaseModel):
    screenshots: list[dict[str, Any]]


class ScreenshotsResponse(BaseModel):
    data: Screenshots
