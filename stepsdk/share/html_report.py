"""One task as a single self-contained HTML file (``stepsdk export TASK --format html``).

Everything is inside the file: screenshots as WebP ``data:`` URIs, the style, one small inline
script (keyboard stepping with j/k or the arrows, ``p`` or the Play button for playback). No
network, no server, no external script or font: it opens from ``file://`` with networking off.

Recorded text is shown as text, as in the viewer (which only uses text-rendering elements):
every value goes through :func:`html.escape` into a text node or a quoted attribute, JSON is
pretty-printed as in the viewer's blocks, and the overlay SVG is built from numbers only. A
Content-Security-Policy allows no script but ours (by its hash) and no fetch at all, so even a
mistake in escaping could not run recorded content or reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from datetime import UTC, datetime
from typing import Any

from stepsdk.schema import parse_timestamp
from stepsdk.viewer.pages._format import fmt_ms
from stepsdk.viewer.pages._overlay import overlay_svg

from .run import SharedRun, SharedStep, action_name, statistics

MAX_TEXT = 20_000  # as the viewer: longer thinking / error text is cut (exports have all of it)
MAX_JSON = 20_000
MAX_TRACE = 50_000
PLAY_MS = 1200

_SCRIPT = """
(() => {
  const steps = Array.from(document.querySelectorAll('.detail'));
  const items = Array.from(document.querySelectorAll('.tl-item'));
  const shots = steps.map((s, i) => s.dataset.shot === '1' ? i : -1).filter(i => i >= 0);
  const playBtn = document.getElementById('play');
  let current = 0, timer = null;
  function show(i) {
    if (!steps.length) return;
    current = Math.max(0, Math.min(i, steps.length - 1));
    steps.forEach((s, k) => { s.hidden = k !== current; });
    items.forEach((s, k) => s.classList.toggle('sel', k === current));
    items[current].scrollIntoView({block: 'nearest'});
    document.body.dataset.current = String(current);
  }
  function stop() { clearInterval(timer); timer = null; playBtn.textContent = 'Play'; }
  function tick() {
    const next = shots.find(i => i > current);
    if (next === undefined) { stop(); return; }
    show(next);
  }
  function toggle() {
    if (timer) { stop(); return; }
    if (!shots.length) return;
    if (shots.find(i => i > current) === undefined) show(shots[0]);
    timer = setInterval(tick, Number(document.body.dataset.playMs));
    playBtn.textContent = 'Pause';
  }
  items.forEach((el, k) => el.addEventListener('click', () => show(k)));
  playBtn.addEventListener('click', toggle);
  document.getElementById('prev').addEventListener('click', () => show(current - 1));
  document.getElementById('next').addEventListener('click', () => show(current + 1));
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (['j', 'ArrowDown', 'ArrowRight'].includes(e.key)) { show(current + 1); e.preventDefault(); }
    else if (['k', 'ArrowUp', 'ArrowLeft'].includes(e.key)) { show(current - 1); e.preventDefault(); }
    else if (e.key === 'p') toggle();
  });
  show(0);
})();
"""

_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2937;background:#f3f4f6}header{background:#4338ca;color:#fff;padding:10px 16px}
header h1{margin:0;font-size:20px;word-break:break-all}main{padding:12px 16px;max-width:1500px;margin:auto}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px;margin-bottom:12px}
.stats{display:flex;flex-wrap:wrap;gap:18px}.stats div{display:flex;flex-direction:column}
.stats small,.lbl{font-size:11px;color:#6b7280;text-transform:uppercase}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;color:#fff;background:#6b7280}
.s-success,.ok{background:#16a34a}.s-failed,.bad{background:#dc2626}.s-running{background:#2563eb}
.s-interrupted{background:#ea580c}.act{background:#fff;color:#4338ca;border:1px solid #4338ca}
.cols{display:flex;gap:16px;align-items:flex-start}.tl{width:45%;max-height:80vh;overflow:auto}
.pane{width:55%;position:sticky;top:8px}.tl-item{padding:6px 8px;border-radius:6px;cursor:pointer;
border-left:4px solid transparent;margin-bottom:4px;background:#fff}.tl-item.failed{background:#fef2f2;
border-left-color:#dc2626}.tl-item.sel{outline:2px solid #6366f1}.tl-item p{margin:2px 0;color:#374151;
overflow-wrap:anywhere}pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;
word-break:break-all;background:#f3f4f6;border-radius:6px;padding:8px;max-height:24rem;overflow:auto;margin:4px 0}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}.err{background:#fef2f2;color:#991b1b;
border-radius:6px;padding:8px}.shot{position:relative;margin:8px auto;max-width:100%;width:fit-content}
.shot img{display:block;max-width:100%;max-height:62vh;width:auto;height:auto}.shot svg{position:absolute;inset:0;
width:100%;height:100%;pointer-events:none}.bar{display:flex;align-items:center;gap:8px}
.bar h2{margin:0;font-size:17px}.grow{flex:1}button{font:inherit;padding:2px 10px;border-radius:6px;
border:1px solid #4338ca;background:#fff;color:#4338ca;cursor:pointer}.hint{color:#9ca3af;font-size:12px}
table.meta td{padding:1px 10px 1px 0;vertical-align:top;overflow-wrap:anywhere}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _short(value: Any, limit: int) -> str:
    return _cut(" ".join(str(value or "").split()), limit)


def json_text(value: Any, limit: int = MAX_JSON) -> str:
    """Pretty JSON as the viewer's blocks show it, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = (
            text[:limit]
            + f"\n… cut here: {len(text) - limit:,} more characters (export the task for all of it)"
        )
    return text


def _fmt_ts(value: Any) -> str:
    if not isinstance(value, str):
        return "–"
    moment = parse_timestamp(value)
    if moment is None:
        return _cut(value, 40)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _task_ms(task: dict[str, Any]) -> float | None:
    start, end = parse_timestamp(task.get("started_at")), parse_timestamp(task.get("finished_at"))
    if start is None or end is None:  # naive = UTC (stepsdk.schema): one naive, one aware works
        return None
    return (end - start).total_seconds() * 1000


def _header(run: SharedRun) -> str:
    t = run.task
    st = statistics(run)
    status = str(t.get("status") or "unknown")
    rate = f"{st['success_rate'] * 100:.1f} %" if st["success_rate"] is not None else "–"
    cells = [
        ("Agent", t.get("agent") or "–"),
        ("Started", _fmt_ts(t.get("started_at"))),
        ("Finished", _fmt_ts(t.get("finished_at"))),
        ("Duration", fmt_ms(_task_ms(t))),
        ("Steps", st["steps"]),
        ("Succeeded", st["succeeded"]),
        ("Failed", st["failed"]),
        ("Success rate", rate),
        ("Step time", fmt_ms(st["step_time_ms"])),
        ("Screenshots", st["screenshots"]),
        ("Tokens", st["total_tokens"] if st["total_tokens"] is not None else "–"),
    ]
    out = [
        f'<div class="card" id="task"><div class="bar"><span class="badge s-{_e(status)}" id="status">'
        f'{_e(status)}</span><span class="grow"></span><span class="hint">id: {_e(run.task_id)}</span></div>',
        '<div class="stats">',
    ]
    out += [f"<div><small>{_e(k)}</small><b>{_e(v)}</b></div>" for k, v in cells]
    out.append("</div>")
    if t.get("result"):
        out.append(
            f'<p class="text" style="color:#166534">Result: {_e(_cut(str(t["result"]), MAX_TEXT))}</p>'
        )
    if t.get("error_message"):
        out.append(
            f'<p class="text" style="color:#b91c1c">Error: {_e(_cut(str(t["error_message"]), MAX_TEXT))}</p>'
        )
    if t.get("description"):
        out.append(f'<p class="text">{_e(_cut(str(t["description"]), MAX_TEXT))}</p>')
    if isinstance(t.get("metadata"), dict) and t["metadata"]:
        rows = "".join(
            f"<tr><td class=lbl>{_e(_cut(str(k), 200))}</td><td>"
            f"{_e(_cut(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str), 2000))}"
            f"</td></tr>"
            for k, v in list(t["metadata"].items())[:100]
        )
        out.append(f'<table class="meta">{rows}</table>')
    out.append("</div>")
    return "".join(out)


def _timeline_item(index: int, step: SharedStep) -> str:
    row = step.row
    name = action_name(row.get("step_data"))
    label = row.get("name") or ""
    parts = [
        f'<div class="tl-item{" failed" if step.failed else ""}" id="step-{index}">',
        f"<b>#{_e(step.number)} {_e(row.get('step_type'))}</b> ",
    ]
    if name:
        parts.append(f'<span class="badge act">{_e(name)}</span> ')
    if label:
        parts.append(f"{_e(_short(label, 200))} ")
    parts.append(f'<span class="hint">{_e(fmt_ms(row.get("duration_ms")))}</span>')
    if step.failed:
        parts.append(' <span class="badge bad">FAILED</span>')
    if row.get("thinking"):
        parts.append(f"<p>{_e(_short(row['thinking'], 280))}</p>")
    if step.failed:
        parts.append(
            f'<p style="color:#b91c1c">{_e(row.get("error_type") or "Error")}: '
            f"{_e(_short(row.get('error_message'), 200))}</p>"
        )
    parts.append("</div>")
    return "".join(parts)


def _screenshot(step: SharedStep) -> str:
    if step.image is None or step.size is None:
        if step.screenshot_path:
            return f'<p class="hint">Screenshot {_e(step.screenshot_path)} was not available for this export.</p>'
        return ""
    w, h = step.size
    uri = "data:image/webp;base64," + base64.b64encode(step.image).decode("ascii")
    svg = overlay_svg(step.marks, w, h)  # numbers only (see stepsdk.viewer.pages._overlay)
    return (
        f'<div class="shot"><img alt="screenshot of step {_e(step.number)}" width="{w}" height="{h}" '
        f'src="{uri}"><svg class="overlay" viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">{svg}</svg></div>'
    )


def _detail(index: int, total: int, step: SharedStep) -> str:
    row = step.row
    ok = '<span class="badge bad">failed</span>' if step.failed else '<span class="badge ok">ok</span>'
    out = [
        f'<section class="detail card" data-index="{index}" data-shot="{1 if step.image else 0}" hidden>',
        f'<div class="bar"><h2 class="step-title">Step {_e(step.number)} of {total}</h2>',
        f'<span class="grow"></span><span>{_e(row.get("step_type"))} · {_e(fmt_ms(row.get("duration_ms")))}'
        f"</span> {ok}</div>",
    ]
    if row.get("name"):
        out.append(f'<div class="text"><b>{_e(_cut(str(row["name"]), 200))}</b></div>')
    out.append(_screenshot(step))
    if step.failed:
        out.append(
            f'<div class="err"><b>{_e(row.get("error_type") or "Error")}'
            f"{' (' + _e(row['error_category']) + ')' if row.get('error_category') else ''}</b>"
            f'<div class="text">{_e(_cut(str(row.get("error_message") or ""), MAX_TEXT))}</div>'
        )
        if row.get("stack_trace"):
            out.append(f"<pre>{_e(_cut(str(row['stack_trace']), MAX_TRACE))}</pre>")
        out.append("</div>")
    if row.get("thinking"):
        out.append(
            f'<div class="lbl">Thinking</div><div class="text thinking">'
            f"{_e(_cut(str(row['thinking']), MAX_TEXT))}</div>"
        )
    out.append(f'<div class="lbl">Action (step_data)</div><pre>{_e(json_text(row.get("step_data")))}</pre>')
    if row.get("action_result") is not None:
        out.append(f'<div class="lbl">Result</div><pre>{_e(json_text(row.get("action_result")))}</pre>')
    if isinstance(row.get("usage"), dict):
        out.append(f'<div class="lbl">Tokens</div><pre>{_e(json_text(row["usage"]))}</pre>')
    if row.get("metadata"):
        out.append(
            f"<details><summary>Metadata</summary><pre>{_e(json_text(row.get('metadata')))}</pre></details>"
        )
    out.append("</section>")
    return "".join(out)


def render(run: SharedRun, *, play_ms: int = PLAY_MS) -> str:
    """The whole report as one HTML string."""
    title = str(run.task.get("title") or "(untitled task)")
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (
        f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
        "base-uri 'none'; form-action 'none'"
    )
    total = len(run.steps)
    parts: list[str] = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="stepsdk">',
        f"<title>{_e(_cut(title, 200))} · stepsdk report</title><style>{_CSS}</style></head>",
        f'<body data-play-ms="{int(play_ms)}"><header><h1>{_e(_cut(title, 2000))}</h1></header><main>',
        _header(run),
    ]
    if not total:
        parts.append('<div class="card">This task has no steps recorded.</div>')
    parts.append('<div class="cols"><div class="tl card" id="timeline">')
    parts.append(f'<div class="hint">{total} step(s) · j/k or arrows: step · p: play screenshots</div>')
    parts += [_timeline_item(i, s) for i, s in enumerate(run.steps)]
    parts.append(
        '</div><div class="pane"><div class="bar card"><button id="prev" title="previous (k)">◀</button>'
        '<button id="next" title="next (j)">▶</button><button id="play" title="play (p)">Play</button>'
        f'<span class="grow"></span><span class="hint">exported {_e(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))}'
        "</span></div>"
    )
    parts += [_detail(i, total, s) for i, s in enumerate(run.steps)]
    parts.append(f"</div></div></main><script>{_SCRIPT}</script></body></html>\n")
    return "".join(parts)
