"""Formatting shared by the pages and the self-contained HTML report (no NiceGUI here: the report
imports it without the viewer's extra)."""

from __future__ import annotations

from typing import Any


def fmt_ms(value: Any) -> str:
    """A duration in milliseconds as a person reads it: ``850 ms``, ``2.35 s``, ``3 min 5 s``, ``1 h 2 min``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    if minutes < 60:
        return f"{int(minutes)} min {seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"
