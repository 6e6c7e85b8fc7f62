"""pytest fixtures for the stack (loaded by the repository's root ``conftest.py``).

``supabase_stack`` (session): one stack for the whole run; ``stack``: that stack emptied
(``reset()``) with faults cleared; ``seeded``: ``stack`` with ``supabase/seed.sql`` applied.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .stack import SEED_SQL, LocalStack


@pytest.fixture(scope="session")
def supabase_stack() -> Iterator[LocalStack]:
    """One stack per test session: PostgreSQL, migrations applied, gateway on a free port."""
    stack = LocalStack.start()
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def stack(supabase_stack: LocalStack) -> Iterator[LocalStack]:
    """The session's stack with stepsdk's data truncated, storage emptied and faults cleared."""
    supabase_stack.reset()
    yield supabase_stack
    supabase_stack.faults.clear()


@pytest.fixture
def seeded(stack: LocalStack) -> LocalStack:
    """``stack`` with supabase/seed.sql applied."""
    stack.sql(SEED_SQL.read_text())
    return stack
