"""Helpers the statistics of both sources share with their tests: timestamps and
PostgreSQL's ``percentile_cont``. The statistics themselves are SQL in both sources
(``*_stepsdk_stats.sql`` in Supabase, the same definitions over the backup's SQLite index in
``backup_source.py``)."""

from __future__ import annotations

from stepsdk.store.index import error_group, parse_ts, percentile_cont

__all__ = ["error_group", "parse_ts", "percentile_cont"]
