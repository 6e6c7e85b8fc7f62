"""Shared fixtures: the local Supabase-compatible stack (tests/supabase_local/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.supabase_local import LocalStack
from tests.supabase_local.stack import SEED_SQL


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
