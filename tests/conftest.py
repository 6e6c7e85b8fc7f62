"""Shared fixtures: the local Supabase-compatible stack (tests/supabase_local/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.supabase_local import LocalStack


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
