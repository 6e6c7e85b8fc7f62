"""The sdist and wheel build, and the wheel alone is enough: installed into a fresh virtual
environment outside the checkout, it records a task in local mode, prints the schema, serves the
viewer and applies the migrations to a database.

Speed: the package is built without build isolation (``build`` and ``setuptools`` come from the
dev extra) and the fresh environment gets the wheel with ``--no-deps``; its third-party
dependencies are the dev environment's, reached through a ``.pth`` line that adds that
``site-packages`` as a plain path (so the dev environment's editable install of stepsdk, which
lives in .pth hooks there, is *not* active). The test asserts stepsdk, viewer and the SQL come
from the fresh environment and that the checkout is not on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from supabase_local import postgres
from supabase_local.postgres import free_port
from supabase_local.stack import apply_platform, migration_dsn, run_sql

REPO = Path(__file__).resolve().parents[1]
# The wheel's top-level import names: the repository's viewer/ is installed as stepsdk.viewer (setup.py).
EXPECTED_TOP_LEVEL = {"stepsdk"}

RECORD_TASK = """
import json, sys
import stepsdk
from stepsdk import StepTracker, StepType
with StepTracker(title="wheel smoke", agent="smoke-agent") as tracker:
    tracker.record_step(StepType.THINKING, thinking="installed from a wheel")
    tracker.record_step(StepType.ACTION, {"click": "ok"}, duration_ms=3.0)
    tracker.finish("success", result="done")
from stepsdk import viewer
from stepsdk.viewer.data import base
print(json.dumps({"task_id": tracker.task_id, "stepsdk": stepsdk.__file__, "viewer": viewer.__file__,
                  "viewer_data": base.__file__, "path": sys.path}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """sdist + wheel (the wheel built from the sdist, as `python -m build` does), installed fresh."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        cwd=root,
        timeout=180,
    )
    (wheel,) = dist.glob("stepsdk-*.whl")
    (sdist,) = dist.glob("stepsdk-*.tar.gz")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    py = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_stepsdk_smoke_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return {"root": root, "wheel": wheel, "sdist": sdist, "venv": venv, "purelib": Path(purelib)}


def _env(built: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PYTHONPATH",
            "SUPABASE_URL",
            "SUPABASE_SECRET_KEY",
            "SUPABASE_SERVICE_ROLE_KEY",
            "STEPSDK_BACKUP_DIR",
            "SUPABASE_DB_URL",
            "VIRTUAL_ENV",
        )
        and not k.startswith(("PYTEST", "NICEGUI"))
    }  # NiceGUI runs in test mode under pytest
    env["PATH"] = f"{built['venv'] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env | extra


def _run(built: dict[str, Path], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=built["root"], env=_env(built, **env), capture_output=True, text=True, timeout=120
    )


def test_wheel_contents_top_level_names_and_sql(built):
    with zipfile.ZipFile(built["wheel"]) as whl:
        names = whl.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == EXPECTED_TOP_LEVEL
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("stepsdk/_supabase/migrations/"))
    assert shipped == sorted(p.name for p in (REPO / "supabase" / "migrations").glob("*.sql"))
    assert sum(n.startswith("stepsdk/_supabase/queries/") for n in names) == len(
        list((REPO / "supabase" / "queries").glob("*.sql"))
    )
    assert not any("supabase_local" in n or n.startswith("tests/") for n in names)
    # the repository's viewer/, every module of it, as stepsdk/viewer/ (setup.py's package_dir)
    viewer_modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "viewer").rglob("*.py"))
    assert sorted(n for n in names if n.startswith("stepsdk/viewer/") and n.endswith(".py")) == [
        f"stepsdk/{name}" for name in viewer_modules
    ]
    # what pip installed: the same top-level names, nothing else in site-packages
    installed = {
        p.name
        for p in built["purelib"].iterdir()
        if not p.name.endswith(".dist-info") and p.name not in ("_stepsdk_smoke_deps.pth", "__pycache__")
    }
    assert installed == EXPECTED_TOP_LEVEL
    # the sdist carries the SQL too (the wheel above was built from it)
    import tarfile

    with tarfile.open(built["sdist"]) as tar:
        members = tar.getnames()
    assert any(m.endswith("supabase/migrations/20261122000001_stepsdk_core.sql") for m in members)
    assert any(m.endswith("/viewer/pages/task.py") for m in members)  # the sdist keeps the repository layout


def test_installed_wheel_records_prints_schema_serves_viewer_and_pushes(built, supabase_stack):
    backup = built["root"] / "backup"
    rec = _run(
        built, str(built["venv"] / "bin" / "python"), "-c", RECORD_TASK, STEPSDK_BACKUP_DIR=str(backup)
    )
    assert rec.returncode == 0, rec.stderr
    info = json.loads(rec.stdout.strip().splitlines()[-1])
    assert info["stepsdk"].startswith(str(built["purelib"])) and info["viewer"].startswith(
        str(built["purelib"])
    )
    assert Path(info["viewer_data"]) == built["purelib"] / "stepsdk" / "viewer" / "data" / "base.py"
    assert not any(p and Path(p).resolve() == REPO for p in info["path"])
    assert any(backup.rglob("*")), "the local backup was not written"

    help_ = _run(built, str(built["venv"] / "bin" / "python"), "-m", "stepsdk.viewer", "--help")
    assert help_.returncode == 0 and "--backup-dir" in help_.stdout, help_.stderr

    sql = _run(built, "stepsdk", "db", "sql")
    assert sql.returncode == 0, sql.stderr
    assert "create table if not exists public.tasks" in sql.stdout
    assert "insert into supabase_migrations.schema_migrations" in sql.stdout

    port = free_port()
    viewer = subprocess.Popen(
        ["stepsdk", "view", "--backup-dir", str(backup), "--port", str(port)],
        cwd=built["root"],
        env=_env(built),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        page = _first_answer(f"http://127.0.0.1:{port}/", viewer, timeout=60)
        assert page.status_code == 200 and "<html" in page.text.lower()
        tasks = httpx.get(f"http://127.0.0.1:{port}/api/tasks", timeout=10).json()
        assert info["task_id"] in json.dumps(tasks)
    finally:
        viewer.terminate()
        viewer.wait(15)

    name = "wheel_" + uuid.uuid4().hex[:10]
    dsn = postgres.create_database(supabase_stack.db_url, name)
    try:
        apply_platform(dsn)
        target = migration_dsn(dsn)  # `postgres`, not a superuser, as on hosted
        first = _run(built, "stepsdk", "db", "push", "--db-url", target, "--json")
        assert first.returncode == 0, first.stderr
        applied = json.loads(first.stdout)["applied"]
        assert applied == sorted(p.name for p in (REPO / "supabase" / "migrations").glob("*.sql"))
        second = _run(built, "stepsdk", "db", "push", "--db-url", target, "--json")
        assert json.loads(second.stdout)["applied"] == []
        assert run_sql(target, "select count(*) as n from supabase_migrations.schema_migrations") == [
            {"n": len(applied)}
        ]
    finally:
        postgres.drop_database(supabase_stack.db_url, name)


def _first_answer(url: str, proc: subprocess.Popen, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"stepsdk view exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
