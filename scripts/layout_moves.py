"""The folder layout of issue 17: flat ``stepsdk/_*.py`` modules into folders, tests mirroring them.

Two steps, each re-runnable (a step already done is skipped):

    python scripts/layout_moves.py move      # git mv only (pure renames: one commit of its own)
    python scripts/layout_moves.py rewrite   # imports, dotted names and paths in every tracked file

``rewrite`` is what to run again after merging a branch that still uses the old names: it turns
``stepsdk._backup`` into ``stepsdk.store.backup``, ``from stepsdk import _alerts`` into
``from stepsdk.ops import alerts as _alerts``, ``stepsdk/_backup.py`` into
``stepsdk/store/backup.py``, ``tests/test_csv.py`` into ``tests/store/test_csv.py``, and the
relative imports of the moved modules into absolute ones; then it sorts the imports of the files it
changed (``ruff check --select I --fix``). SQL migrations are left alone (applied files).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# old module under stepsdk/ -> new dotted path under stepsdk
MODULES: dict[str, str] = {
    # the recorder: the caller's side and what it does to a step before the pipeline
    "_tracker": "recording.tracker",
    "_sanitize": "recording.sanitize",
    "_screenshots": "recording.screenshots",
    "_sensitive": "recording.sensitive",
    "_step_names": "recording.step_names",
    "_error_category": "recording.error_category",
    "_abandoned": "recording.abandoned",
    # where rows go
    "_supabase_sink": "backend.supabase_sink",
    "_client": "backend.client",
    "_retry": "backend.retry",
    # the local store: journal, index, the export format and its writers
    "_backup": "store.backup",
    "_index": "store.index",
    "_export_format": "store.export_format",
    "_csv": "store.csv_cells",
    "_xlsx": "store.xlsx",
    # operations on recorded data (the CLI's and the viewer's)
    "_resync": "ops.resync",
    "_export": "ops.export",
    "_import": "ops.import_",
    "_import_check": "ops.import_check",
    "_retention": "ops.retention",
    "_local_retention": "ops.local_retention",
    "_retention_status": "ops.retention_status",
    "_delete": "ops.delete",
    "_alerts": "ops.alerts",
    "_alert_delivery": "ops.alert_delivery",
    "_migrations": "ops.migrations",
    "_db_check": "ops.db_check",
    "_ops_stats": "ops.stats",
    "_prices": "ops.prices",
    "_audit": "ops.audit",
    # the simulated agent of `stepsdk demo`
    "_demo": "integrations.demo_agent",
    # the core every folder uses
    "_config": "config",
    "_model": "model",
}

# test module under tests/ -> folder under tests/
TESTS: dict[str, str] = {
    "test_alerts": "ops",
    "test_audit": "ops",
    "test_ops_stats_parity": "ops",
    "test_prices": "ops",
    "test_resync_cli": "ops",
    "test_retention_schedule": "ops",
    "webhook_receiver": "ops",
    "test_backup_hostile": "store",
    "test_backup_index": "store",
    "test_backup_modes": "store",
    "test_backup_store": "store",
    "test_csv": "store",
    "test_legacy_screenshot_path": "store",
    "test_chaos_backend": "backend",
    "test_tracker_retry": "backend",
    "test_tracker_supabase": "backend",
    "test_chaos_crash": "recording",
    "test_redaction_corpus": "recording",
    "test_screenshots_bad_input": "recording",
    "test_screenshots_capture": "recording",
    "test_screenshots_e2e": "recording",
    "test_screenshots_prepare": "recording",
    "test_sensitive_screens": "recording",
    "test_tracker_local": "recording",
    "test_tracker_sanitize": "recording",
    "test_cli_cleanup": "cli",
    "test_cli_common": "cli",
    "test_cli_db": "cli",
    "test_cli_delete": "cli",
    "test_cli_export": "cli",
    "test_cli_export_xlsx": "cli",
    "test_cli_import": "cli",
    "test_cli_messages": "cli",
    # the SQL of supabase/ (migrations, queries, statistics, the Supabase CLI against them)
    "test_schema_migrations": "schema",
    "test_schema_parity": "schema",
    "test_schema_plans": "schema",
    "test_schema_queries": "schema",
    "test_schema_retention": "schema",
    "test_schema_rls": "schema",
    "test_schema_stats": "schema",
    "test_supabase_cli": "schema",
}

NEW_PACKAGES = {
    "stepsdk/store/__init__.py": '"""The local store: the backup journal and its reader (`backup.py`), the SQLite index that\n'
    'the viewer, export and retention read (`index.py`), the export format and its CSV/XLSX writers."""\n',
    "stepsdk/ops/__init__.py": '"""Operations on recorded data, shared by the CLI and the viewer: resync, export, import,\n'
    'retention and delete, alerts, statistics, audit, the shipped schema (`migrations.py`, `db_check.py`)."""\n',
}
NEW_TEST_PACKAGES = sorted({f"tests/{folder}/__init__.py" for folder in TESTS.values()})

TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".in", ".cfg", ".txt", ".yml", ".yaml", ".ini", ".rst"}
SELF = Path(__file__).resolve()


def new_path(old: str) -> str:
    return "stepsdk/" + MODULES[old].replace(".", "/") + ".py"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, text=True, capture_output=True).stdout


def move() -> None:
    for old in MODULES:
        src, dst = REPO / f"stepsdk/{old}.py", REPO / new_path(old)
        if src.exists() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            git("mv", str(src), str(dst))
    for name, folder in TESTS.items():
        src, dst = REPO / f"tests/{name}.py", REPO / f"tests/{folder}/{name}.py"
        if src.exists() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            git("mv", str(src), str(dst))
    for path, text in NEW_PACKAGES.items():
        if not (REPO / path).exists():
            (REPO / path).write_text(text)
            git("add", path)
    for path in NEW_TEST_PACKAGES:
        if not (REPO / path).exists():
            (REPO / path).write_text("")
            git("add", path)


# longest names first, so that `_import_check` is not read as `_import` + `_check`
_OLD = sorted(MODULES, key=len, reverse=True)
_DOTTED = re.compile(r"\bstepsdk\.(" + "|".join(_OLD) + r")\b")
_PATH = re.compile(r"\bstepsdk/(" + "|".join(_OLD) + r")\.py\b")
_FROM_STEPSDK = re.compile(r"^([ \t]*)from stepsdk import ([^\n(#]+?)[ \t]*(#[^\n]*)?$", re.M)
_RELATIVE = re.compile(r"^([ \t]*)from \.(" + "|".join(_OLD) + r") import ", re.M)
_TEST_NAMES = sorted(TESTS, key=len, reverse=True)
_TEST_DOTTED = re.compile(r"\btests\.(" + "|".join(_TEST_NAMES) + r")\b")
_TEST_PATH = re.compile(r"\btests/(" + "|".join(_TEST_NAMES) + r")\.py\b")
_PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.(?:parent\.parent|parents\[1\])")


def _split_from_stepsdk(match: re.Match[str]) -> str:
    indent, names = match.group(1), match.group(2)
    kept, lines = [], []
    for part in (p.strip() for p in names.split(",")):
        if not part:
            continue
        name, _, alias = part.partition(" as ")
        name, alias = name.strip(), alias.strip() or name.strip()
        if name in MODULES:
            parent, _, leaf = ("stepsdk." + MODULES[name]).rpartition(".")
            lines.append(f"{indent}from {parent} import {leaf} as {alias}")
        else:
            kept.append(part)
    if not lines:
        return match.group(0)
    if kept:
        lines.insert(0, f"{indent}from stepsdk import {', '.join(kept)}")
    if match.group(3):  # a trailing comment stays on the first line
        lines[0] += "  " + match.group(3)
    return "\n".join(lines)


def rewrite_text(path: str, text: str) -> str:
    moved_modules = {new_path(old) for old in MODULES}
    moved_tests = {f"tests/{folder}/{name}.py" for name, folder in TESTS.items()}
    if path.endswith(".py"):
        text = _FROM_STEPSDK.sub(_split_from_stepsdk, text)
        if path in moved_modules:
            text = _RELATIVE.sub(lambda m: f"{m.group(1)}from stepsdk.{MODULES[m.group(2)]} import ", text)
        if path in moved_tests:
            text = _PARENTS.sub("Path(__file__).resolve().parents[2]", text)
    text = _DOTTED.sub(lambda m: "stepsdk." + MODULES[m.group(1)], text)
    text = _PATH.sub(lambda m: new_path(m.group(1)), text)
    text = _TEST_DOTTED.sub(lambda m: f"tests.{TESTS[m.group(1)]}.{m.group(1)}", text)
    text = _TEST_PATH.sub(lambda m: f"tests/{TESTS[m.group(1)]}/{m.group(1)}.py", text)
    return text


def rewrite() -> list[str]:
    changed = []
    for path in git("ls-files").splitlines():
        file = REPO / path
        if file.suffix not in TEXT_SUFFIXES or file.resolve() == SELF or not file.is_file():
            continue
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_text(path, text)
        if new != text:
            file.write_text(new)
            changed.append(path)
    # renamed modules sort elsewhere: sort imports (the tree is ruff-clean before, so only files
    # whose imports this rewrite unsorted change, whether now or in an earlier run)
    ruff = REPO / ".venv/bin/ruff"
    subprocess.run(
        [str(ruff) if ruff.exists() else "ruff", "check", "-q", "--select", "I", "--fix", "."],
        cwd=REPO,
        check=False,
    )
    return changed


def main(argv: list[str]) -> int:
    if argv[1:] == ["move"]:
        move()
    elif argv[1:] == ["rewrite"]:
        for path in rewrite():
            sys.stdout.write(f"rewrote {path}\n")
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
