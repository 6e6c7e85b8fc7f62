"""Rewrite references to the old top-level import package ``viewer`` as ``stepsdk.viewer``.

The repository's ``viewer/`` folder is installed as ``stepsdk.viewer`` (setup.py, issue 17). Run
from the repository root, as often as needed (a second run changes nothing)::

    python scripts/viewer_imports.py          # rewrite the tracked files, sort the imports it touched
    python scripts/viewer_imports.py --check  # list what would change, exit 1 if anything would

Rewritten, in the tracked ``.py``, ``.md``, ``.sh``, ``.toml`` files: ``from viewer[.x] import``,
``import viewer`` (→ ``from stepsdk import viewer``), ``import viewer.x as y``, dotted names into
the package's modules (``"viewer.pages.task"``, ``viewer.app.run`` in prose), logger names
(``getLogger("viewer.backup")``, ``logger="viewer"``), ``import_module("viewer")``,
``python -m viewer`` and ``"-m", "viewer"``. Paths (``viewer/api.py``) and plain words are left
alone. The Python files it changed get ``ruff check --select I --fix`` (their import blocks only).
A bare ``import viewer.x`` (used as ``viewer.x.name``) is listed on stderr for a hand edit.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".sh", ".toml"}


def submodules(root: Path = ROOT) -> list[str]:
    """The names directly inside the package (``app``, ``data``, ``pages``, ``__main__``...)."""
    names = {p.stem for p in (root / "viewer").glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in (root / "viewer").iterdir() if (p / "__init__.py").is_file()}
    return sorted(names, key=len, reverse=True)


def rules(names: list[str]) -> list[tuple[re.Pattern[str], str]]:
    # not preceded by a name character, a dot or a slash: `stepsdk.viewer.x`, `tests.viewer.x`,
    # `tests/viewer/x` stay; followed by a real module of the package: `viewer.http_client` stays
    before = r"(?<![\w./-])"
    dotted = "|".join(map(re.escape, names))
    return [
        (re.compile(r"^([ \t]*)from viewer(\.[\w.]+)? import ", re.M), r"\1from stepsdk.viewer\2 import "),
        (re.compile(r"^([ \t]*)import viewer(\.[\w.]+ as \w+)\b", re.M), r"\1import stepsdk.viewer\2"),
        (re.compile(r"^([ \t]*)import viewer[ \t]*$", re.M), r"\1from stepsdk import viewer"),
        # logger names (getLogger, caplog's logger=) and importlib's names, also those of no module
        (
            re.compile(r"(getLogger\(|logger=|import_module\()(['\"])viewer(\.[\w.]+)?\2"),
            r"\1\2stepsdk.viewer\3\2",
        ),
        (re.compile(rf"{before}viewer\.({dotted})\b"), r"stepsdk.viewer.\1"),
        (re.compile(r"(['\"])-m\1, (['\"])viewer\2"), r"\1-m\1, \2stepsdk.viewer\2"),
        (re.compile(r"-m viewer\b"), "-m stepsdk.viewer"),
    ]


def rewrite(text: str, patterns: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return text


def tracked_files(root: Path = ROOT) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    me = Path(__file__).resolve()
    paths = [root / name for name in out.decode().split("\0") if Path(name).suffix in SUFFIXES]
    return [path for path in paths if path.is_file() and path.resolve() != me]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the files that would change")
    args = parser.parse_args(argv)
    patterns = rules(submodules())
    changed = []
    for path in tracked_files():
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, patterns)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        print(path.relative_to(ROOT))  # noqa: T201 - a script's output
    leftover = re.compile(r"^[ \t]*import viewer\.[\w.]+[ \t]*$", re.M)
    for path in tracked_files():
        for match in leftover.finditer(path.read_text(encoding="utf-8")):
            sys.stderr.write(f"{path.relative_to(ROOT)}: rewrite by hand: {match.group().strip()}\n")
    python = [str(p) for p in changed if p.suffix == ".py"]
    if python and not args.check:
        ruff = Path(sys.executable).with_name("ruff")
        ruff_cmd = [str(ruff) if ruff.exists() else "ruff", "check", "-q", "--select", "I", "--fix"]
        subprocess.run([*ruff_cmd, *python], cwd=ROOT, check=False)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
