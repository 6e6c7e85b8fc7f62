"""``stepsdk alerts``: evaluate the alert rules (``check``, for cron) and show the active alerts.

Light at import (every ``stepsdk`` command builds the parser with this module): the rules,
measures and delivery modules are imported when a sub-command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stepsdk.cli._common import (
    CliError,
    Exit,
    add_source_arguments,
    emit,
    examples_formatter,
    open_supabase,
    resolve_source,
    run_safely,
    warn,
)

TEMPFAIL = 75  # sysexits EX_TEMPFAIL: a notification could not be delivered (it is retried next check)

EPILOG = """\
examples:
  stepsdk alerts check                                  # rules from ./stepsdk-alerts.toml or $STEPSDK_ALERTS
  stepsdk alerts check --rules /etc/stepsdk/alerts.toml --json
  */5 * * * * cd /srv/agent && stepsdk alerts check     # crontab: every 5 minutes
  stepsdk alerts show                                   # the alerts active after the last check

Rules (failure_rate, step_p95, error_repeats, upload_backlog) and webhooks are described in
the README; measures come from Supabase when SUPABASE_URL and a key are set, else from the
local backup ($STEPSDK_BACKUP_DIR or ./backup; --local/--backup-dir force it). Each alert is
notified once when it starts (console + webhooks) and once when it resolves; the episodes are
kept in the state file ($STEPSDK_ALERTS_STATE or <rules>.state.json), which the viewer shows.

exit status (check): 0 nothing fired in this check; 1 at least one alert fired; 75 a
notification could not be delivered (retried next check); 69 a rule could not be evaluated
(backend unreachable); 78 bad rules or configuration. Quiet when nothing changed (cron mails
only news).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="alert rules over recorded runs (check for cron, show)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=examples_formatter(),
    )
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION")
    for name, help_text in (
        ("check", "evaluate the rules, notify what started or ended"),
        ("show", "print the active alerts of the last check"),
    ):
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=examples_formatter()
        )
        p.add_argument(
            "--rules",
            metavar="FILE",
            type=Path,
            help="rule file (default: $STEPSDK_ALERTS or ./stepsdk-alerts.toml)",
        )
        add_source_arguments(p)
        p.set_defaults(func=run_check if name == "check" else run_show)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or Exit.USAGE)


def _config(args: argparse.Namespace) -> Any:
    from stepsdk.ops import alerts as _alerts

    try:
        return _alerts.load_config(args.rules or _alerts.rules_path())
    except _alerts.RulesError as exc:
        raise CliError(str(exc), Exit.CONFIG) from None


@run_safely("alerts check")
def run_check(args: argparse.Namespace) -> int:
    from stepsdk.ops import alerts as _alerts
    from stepsdk.ops.alert_delivery import Deliverer, text

    config = _config(args)
    source = resolve_source(args)
    needs_data = any(r.kind != "upload_backlog" for r in config.rules)
    measures: Any = None
    if needs_data:
        measures = (
            _alerts.SupabaseMeasures(open_supabase(source))
            if source.kind == "supabase"
            else _alerts.LocalMeasures(source.backup_dir)
        )
    deliver = Deliverer(config.webhooks)

    def notify(event: Any) -> list[str]:
        failures = deliver(event)
        if not failures and not args.json:  # the console is a target too (cron mails it)
            sys.stdout.write(text(event) + "\n")
        return failures

    try:
        result = _alerts.check(config, measures, source.backup_dir, notify)
    finally:
        deliver.close()
    for rule, why in result.errors:
        warn(f"rule {rule!r} not evaluated: {why}")
    for event, why in result.undelivered:
        warn(f"{event.status} {event.rule!r} not delivered ({why}); retried next check")
    status = (
        Exit.UNAVAILABLE
        if result.errors
        else TEMPFAIL
        if result.undelivered
        else Exit.FAILED
        if result.fired
        else Exit.OK
    )
    summary = {
        "ok": not result.errors and not result.undelivered,
        "status": int(status),
        "source": measures.label if measures else "backup",
        "rules": len(config.rules),
        "fired": [_event(e) for e in result.fired],
        "resolved": [_event(e) for e in result.resolved],
        "active": result.active,
        "undelivered": [{"key": e.key, "status": e.status, "why": w} for e, w in result.undelivered],
        "errors": [{"rule": r, "why": w} for r, w in result.errors],
        "state_file": str(config.state_file),
    }
    human = ""
    if sys.stderr.isatty():
        human = (
            f"{len(config.rules)} rule(s): {len(result.fired)} fired, {len(result.resolved)} resolved, "
            f"{len(result.active)} active"
        )
    emit(args, summary, human)
    return int(status)


@run_safely("alerts show")
def run_show(args: argparse.Namespace) -> int:
    from stepsdk.ops import alerts as _alerts

    config = _config(args)
    state = _alerts.read_state(config.state_file)
    active = [{"key": k, **v} for k, v in state["active"].items()]
    lines = [f"{a.get('rule')}: {a.get('summary')} (since {a.get('since')})" for a in active]
    if not args.json:
        sys.stdout.write("".join(line + "\n" for line in lines) or "no active alert\n")
    emit(args, {"ok": True, "checked_at": state.get("checked_at"), "active": active}, "")
    return Exit.OK


def _event(event: Any) -> dict[str, Any]:
    return {
        "key": event.key,
        "rule": event.rule,
        "kind": event.kind,
        "summary": event.summary,
        "value": event.value,
        "threshold": event.threshold,
        "since": event.since,
    }
