"""The sharing formats of ``stepsdk export`` (``--format html|gif|webp|mp4|otlp|trajectories``).

``stepsdk/cli/export.py`` hands these formats over after selecting the tasks; this module checks
the arguments of each format and writes it.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

from stepsdk.cli._common import CliError, Exit, emit, warn
from stepsdk.ops import export as _export
from stepsdk.store.export_format import write_atomically

SINGLE_TASK = ("html", "gif", "webp", "mp4")
FORMATS = (*SINGLE_TASK, "otlp", "trajectories")

HELP = """\
sharing formats:
  stepsdk export TASK --format html -o run.html      # one self-contained file: open it anywhere
  stepsdk export TASK --format gif -o run.gif        # also webp, mp4 (pip install 'stepsdk[video]')
  stepsdk export TASK --format otlp --endpoint http://127.0.0.1:6006   # a trace to Phoenix, Jaeger…
  stepsdk export --agent phone-bot --format trajectories -o dataset/   # JSONL + images for training

html/gif/webp/mp4 take one task. trajectories exports successful tasks unless --status says
otherwise; -o is a folder (created). Exit 69 when the OTLP receiver does not accept a trace;
exit 1 when some screenshots could not be read (left out, listed). See docs/sharing.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sharing formats (html, gif, webp, mp4, otlp, trajectories)")
    group.add_argument(
        "--seconds-per-frame",
        type=float,
        default=1.0,
        metavar="S",
        help="animation speed and the HTML report's playback (default 1.0)",
    )
    group.add_argument(
        "--endpoint",
        metavar="URL",
        help="OTLP/HTTP receiver for --format otlp (e.g. http://127.0.0.1:4318; /v1/traces is added)",
    )
    group.add_argument(
        "--otlp-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to keep retrying a receiver that does not answer (default 10)",
    )


def check(args: argparse.Namespace) -> None:
    fmt = args.format
    if args.with_screenshots:
        raise CliError(
            f"--with-screenshots is for json/jsonl/csv; --format {fmt} embeds or writes images itself",
            Exit.USAGE,
        )
    if not 0.02 <= args.seconds_per_frame <= 60:
        raise CliError("--seconds-per-frame must be between 0.02 and 60", Exit.USAGE)
    if fmt == "otlp":
        if not args.endpoint:
            raise CliError("--format otlp needs --endpoint URL (the OTLP/HTTP receiver)", Exit.USAGE)
        from stepsdk.share.otlp import traces_url

        try:
            traces_url(args.endpoint)
        except ValueError as exc:
            raise CliError(str(exc), Exit.USAGE) from None
        return
    if args.output is None:
        what = "a folder" if fmt == "trajectories" else "a file"
        raise CliError(f"--format {fmt} writes {what}: give it with -o", Exit.USAGE)
    if fmt == "trajectories":
        if args.output.exists() and not args.output.is_dir():
            raise CliError(f"output {args.output} is not a folder", Exit.USAGE)
        if args.output.is_dir() and any(args.output.iterdir()):
            raise CliError(f"output folder {args.output} is not empty", Exit.USAGE)
    elif args.output.is_dir():
        raise CliError(f"output {args.output} is a folder; give a file name", Exit.USAGE)
    target_parent = args.output.parent if fmt != "trajectories" else args.output.resolve().parent
    if not target_parent.is_dir():
        raise CliError(f"output folder {target_parent} does not exist", Exit.CANT_WRITE)


def default_filter(args: argparse.Namespace, flt: _export.TaskFilter) -> _export.TaskFilter:
    """Trajectories are training data: successful runs unless a status or ids are given."""
    if args.format == "trajectories" and flt.status is None and not flt.task_ids:
        return _export.TaskFilter(flt.task_ids, "success", flt.agent, flt.since, flt.until)
    return flt


def run(args: argparse.Namespace, source: Any, tasks: list[dict[str, Any]]) -> int:
    fmt = args.format
    if fmt in SINGLE_TASK and len(tasks) != 1:
        raise CliError(f"--format {fmt} takes one task; {len(tasks)} matched (give a TASK_ID)", Exit.USAGE)
    started = time.perf_counter()
    bundles = _export.iter_bundles(source, tasks)
    result: dict[str, Any] = {
        "ok": True,
        "source": source.label,
        "format": fmt,
        "output": str(args.output) if args.output else None,
        "tasks": len(tasks),
    }
    missing: list[str] = []
    if fmt in SINGLE_TASK:
        from stepsdk.share.run import shared_run

        shared = shared_run(next(iter(bundles)), source.screenshot)
        missing = shared.missing
        result["steps"] = len(shared.steps)
        result.update(_single(args, shared))
        human = f"wrote {args.output} ({result['bytes']:,} bytes"
        human += f", {result['frames']} frame(s))" if "frames" in result else ")"
    elif fmt == "otlp":
        from stepsdk.share.otlp import OtlpExportError, export_tasks

        base = getattr(source, "client", None) and getattr(source.client, "supabase_url", None)
        try:
            traces, spans = export_tasks(
                bundles,
                args.endpoint,
                timeout=args.otlp_timeout,
                screenshot_base=str(base).rstrip("/") if base else None,
            )
        except OtlpExportError as exc:
            raise CliError(str(exc), Exit.UNAVAILABLE) from None
        result.update({"traces": traces, "spans": spans, "endpoint": args.endpoint})
        human = f"sent {traces} trace(s), {spans} span(s) to {args.endpoint}"
    else:
        from stepsdk.share import trajectories

        report = trajectories.write(bundles, args.output, source.screenshot)
        missing = report.missing or []
        result.update({"episodes": report.episodes, "records": report.records, "images": report.images})
        human = (
            f"wrote {report.records} step record(s) of {report.episodes} episode(s) and {report.images} "
            f"image(s) to {args.output}"
        )
    for path in missing:
        warn(f"screenshot object {path} could not be read; left out")
    result["missing_images"] = missing
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["ok"] = not missing
    emit(args, result, human)
    return Exit.OK if not missing else Exit.FAILED


def _single(args: argparse.Namespace, shared: Any) -> dict[str, Any]:
    fmt = args.format
    if fmt == "html":
        from stepsdk.share.html_report import render

        body = render(shared, play_ms=round(args.seconds_per_frame * 1000)).encode("utf-8")
        write_atomically(args.output, lambda fh: fh.write(body))
        return {"bytes": len(body)}
    from stepsdk.share import animation

    try:
        if fmt == "mp4":
            frames = _mp4(shared, args.output, args.seconds_per_frame)
        else:
            buf = io.BytesIO()
            frames = animation.write_pillow(shared, buf, fmt, args.seconds_per_frame)
            data = buf.getvalue()
            write_atomically(args.output, lambda fh: fh.write(data))
    except animation.AnimationError as exc:
        raise CliError(
            str(exc), Exit.NO_INPUT if isinstance(exc, animation.NothingToAnimate) else Exit.CONFIG
        ) from None
    return {"bytes": Path(args.output).stat().st_size, "frames": frames}


def _mp4(shared: Any, target: Path, seconds: float) -> int:
    """ffmpeg writes a path: a temp file beside the target, renamed when complete."""
    import contextlib
    import os
    import tempfile

    from stepsdk.share import animation

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".mp4", dir=target.parent)
    os.close(fd)
    try:
        frames = animation.write_mp4(shared, Path(tmp), seconds)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return frames
