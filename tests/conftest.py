"""Shared fixtures of the product's tests. The local Supabase stack's fixtures (``supabase_stack``,
``stack``, ``seeded``) come from supabase_local/pytest_plugin.py, loaded by the root conftest.py."""
