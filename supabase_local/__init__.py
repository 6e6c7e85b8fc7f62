"""A local Supabase-compatible stack for tests: real PostgreSQL, PostgREST and Storage emulation.

    stack = LocalStack.start()          # or the pytest fixtures in tests/conftest.py
    sb = stack.client()                 # the official supabase client, service role
    stack.faults.fail_next("POST /rest/v1/task_steps", n=2, status=503)
    stack.close()

See README.md for what is (and deliberately is not) supported.
"""

from .faults import Action, FaultInjector
from .jwt import DEV_JWT_SECRET, make_token
from .stack import LocalStack, apply_migrations, apply_platform, bootstrap

__all__ = [
    "DEV_JWT_SECRET",
    "Action",
    "FaultInjector",
    "LocalStack",
    "apply_migrations",
    "apply_platform",
    "bootstrap",
    "make_token",
]
