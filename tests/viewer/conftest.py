"""Viewer fixtures: the data set in both sources, and a simulated NiceGUI user on the viewer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import core, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
from nicegui.testing.user import User

from stepsdk.viewer.app import create_app, run_options
from stepsdk.viewer.data.backup_source import BackupSource
from stepsdk.viewer.data.base import DataSource
from stepsdk.viewer.data.supabase_source import SupabaseSource
from stepsdk.viewer.pages import _common
from tests.timing import WAIT
from tests.viewer import dataset


@pytest.fixture(autouse=True)
def _running_tasks_stay_live() -> Iterator[None]:
    """The data set's clock is fixed when it is imported and a full suite runs for minutes: its
    5-minute-old running task must not turn stale halfway (tests of staleness set their own limit)."""
    _common.set_stale_minutes(24 * 60)
    yield
    _common.set_stale_minutes(10)


@pytest.fixture(scope="session")
def data() -> dataset.Dataset:
    return dataset.build()


@pytest.fixture
def backup_source(tmp_path: Path, data: dataset.Dataset) -> BackupSource:
    dataset.write_backup(tmp_path / "backup", data)
    return BackupSource(tmp_path / "backup")


@pytest.fixture(scope="session")
def _supabase_clients(supabase_stack) -> tuple[object, SupabaseSource]:
    """One writer client and one source for the session: creating a supabase client costs
    ~0.2 s, and the source keeps no state besides its client (the stack fixture empties the data)."""
    return supabase_stack.client(), SupabaseSource(
        supabase_stack.url, supabase_stack.service_role_key, timeout=5
    )


@pytest.fixture
def supabase_source(stack, data: dataset.Dataset, _supabase_clients) -> SupabaseSource:
    writer, source = _supabase_clients
    dataset.write_supabase(writer, data)
    return source


@pytest.fixture(params=["backup", "supabase"])
def source(request: pytest.FixtureRequest) -> DataSource:
    """The same data set behind each source: every page test runs against both."""
    return request.getfixturevalue(f"{request.param}_source")


@pytest.fixture(params=["backup", "supabase"])
def empty_source(request: pytest.FixtureRequest, tmp_path: Path) -> DataSource:
    if request.param == "backup":
        return BackupSource(tmp_path / "nothing-here")
    request.getfixturevalue("stack")  # emptied
    return request.getfixturevalue("_supabase_clients")[1]


class PatientUser(User):
    """NiceGUI's simulated user, as patient as a loaded machine needs: NiceGUI's should_see
    looks 3 times 0.1 s apart (0.3 s in all), too short for a page that loads from Supabase on a
    loaded CI machine. These look until WAIT seconds have passed and return as soon as the page
    is as expected (a retries= of the caller's own still wins)."""

    async def should_see(self, *args: Any, retries: int = int(WAIT / 0.1), **kwargs: Any) -> None:
        await super().should_see(*args, retries=retries, **kwargs)

    async def should_not_see(self, *args: Any, retries: int = int(WAIT / 0.05), **kwargs: Any) -> None:
        await super().should_not_see(*args, retries=retries, **kwargs)


@asynccontextmanager
async def viewer_user(source: DataSource) -> AsyncIterator[User]:
    """Like nicegui.testing.user_simulation, with the viewer's pages built for ``source``."""
    with nicegui_reset_globals():
        os.environ["NICEGUI_USER_SIMULATION"] = "true"
        try:
            prepare_simulation()
            create_app(source, allowed_hosts=["test"])  # the simulated client's base_url host
            ui.run(storage_secret="simulated secret", **run_options())  # type: ignore[arg-type]
            async with (
                core.app.router.lifespan_context(core.app),
                httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test") as client,
            ):
                yield PatientUser(client)
        finally:
            os.environ.pop("NICEGUI_USER_SIMULATION", None)
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download


@asynccontextmanager
async def backup_viewer(root: Path, ds: dataset.Dataset) -> AsyncIterator[User]:
    """A simulated user on a viewer over a backup holding just ``ds`` (for data the shared set lacks)."""
    dataset.write_backup(root, ds)
    async with viewer_user(BackupSource(root)) as user:
        yield user


@pytest.fixture
async def viewer(source: DataSource, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    async with viewer_user(source) as user:
        yield user
    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    assert not errors, f"unexpected ERROR logs: {[r.getMessage() for r in errors]}"
