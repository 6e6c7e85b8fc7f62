"""Fixtures shared by the product's tests (tests/) and the stack's own (supabase_local/tests/):
the local Supabase stack, started once per session (supabase_local/pytest_plugin.py)."""

pytest_plugins = ["supabase_local.pytest_plugin"]
