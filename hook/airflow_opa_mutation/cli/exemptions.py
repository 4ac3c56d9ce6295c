"""``exemptions report``: per exemption, how many pods it let through in a period - "is it still needed?".

Sources, any number of each:

- ``--decision-log FILE``: OPA decision-log events, one JSON object a line, as OPA's console logger prints
  them or as ``deploy/collector/collector.py`` writes them (``"kind": "decision"``; its status lines are
  skipped). An event's ``result`` is the decision (``policies/lib/decision.rego``), whose ``exemptions``
  names the exemptions that applied; ``timestamp`` places it in the period; ``input.airflow.dag_id``
  (which the decision-log mask keeps) names the DAG. Events without a decision (the admission webhooks'
  AdmissionReviews, other paths) are not counted.
- ``--scan FILE``: a ``scan --output json`` document: each task's ``outcome.exemptions``. A scan is a
  snapshot of what the DAGs would do, so ``--since``/``--until`` do not filter it.

With ``--config FILE`` (the organisation's configuration, either form ``bundle build --config`` takes) the
report also lists the configured exemptions that no pod used, with their owner and end: the ones to
delete. Every decision counts once, so a pod evaluated twice (a retry, ``scan`` and the scheduler) counts
twice. Exit status: 0 the report was made, 2 usage or runtime error (an unreadable source).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ._bundle_builder import CONFIG_PATH, BundleError, load_config
from ._errors import EXIT_OK, CliError, handle_errors
from ._output import emit_document, make_output, output_options

#: As many DAG ids are listed per exemption (the count is complete).
MAX_DAG_IDS = 20
#: An exemption ending within this many days is "expiring" (verify and doctor warn about it too).
WARNING_DAYS = 14


@dataclass
class Usage:
    """One exemption: where it is configured, its owner and end, and the pods it let through."""

    name: str
    policy: str | None
    reason: str | None = None
    ticket: str | None = None
    expires: str | None = None
    configured: bool | None = None
    pods: int = 0
    dag_ids: set[str] = field(default_factory=set)
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    @property
    def key(self) -> str:
        return f"exempt.{self.name}" if self.policy is None else f"policies.{self.policy}.exempt.{self.name}"

    def seen(self, when: datetime | None, dag_id: Any) -> None:
        self.pods += 1
        if isinstance(dag_id, str):
            self.dag_ids.add(dag_id)
        if when is not None:
            self.first_seen = when if self.first_seen is None else min(self.first_seen, when)
            self.last_seen = when if self.last_seen is None else max(self.last_seen, when)

    def owner(self, entry: dict[str, Any]) -> None:
        for member in ("reason", "ticket", "expires"):
            value = entry.get(member)
            if isinstance(value, str) and getattr(self, member) is None:
                setattr(self, member, value)


# -- time ----------------------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")
_RELATIVE = re.compile(r"^(\d+)([dh])$")


def parse_instant(text: str) -> datetime | None:
    """An RFC 3339 date-time (OPA writes nanoseconds; Python reads microseconds) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_bound(text: str, now: datetime) -> datetime:
    """``--since``/``--until``: a date (its start, UTC), a date-time, or ``Nd``/``Nh`` before now."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount = int(relative.group(1))
        return now - (timedelta(days=amount) if relative.group(2) == "d" else timedelta(hours=amount))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            day = None
        if day is not None:
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = parse_instant(text)
    if moment is None:
        raise CliError(f"{text!r} is not a date, an RFC 3339 date-time or a number of days/hours (30d, 12h)")
    return moment


def ends(expires: str | None) -> datetime | None:
    """When an exemption stops matching (policies/lib/exemptions.rego, ends_ns): a date is valid through
    that day, UTC; a date-time until that instant. ``None`` without an end or when malformed (the library
    reports that as a configuration error)."""
    if expires is None:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
        try:
            day = date.fromisoformat(expires)
        except ValueError:
            return None
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", expires):
        return None
    return parse_instant(expires)


def state(usage: Usage, now: datetime) -> str:
    """active, expiring (within 14 days), expired, or invalid (an expires the library refuses)."""
    if usage.expires is None:
        return "active"
    end = ends(usage.expires)
    if end is None:
        return "invalid"
    if end <= now:
        return "expired"
    return "expiring" if end - now < timedelta(days=WARNING_DAYS) else "active"


# -- reading the sources ---------------------------------------------------------------------------------------


class Report:
    def __init__(self, since: datetime | None, until: datetime | None) -> None:
        self.since, self.until = since, until
        self.usages: dict[tuple[str | None, str], Usage] = {}
        self.decisions = 0

    def usage(self, policy: str | None, name: str) -> Usage:
        key = (policy, name)
        if key not in self.usages:
            self.usages[key] = Usage(name, policy)
        return self.usages[key]

    def count(self, exemptions: Any, when: datetime | None, dag_id: Any) -> None:
        self.decisions += 1
        for entry in exemptions if isinstance(exemptions, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                policy = entry.get("policy")
                usage = self.usage(policy if isinstance(policy, str) else None, entry["name"])
                usage.owner(entry)
                usage.seen(when, dag_id)

    def in_period(self, when: datetime | None) -> bool:
        if when is None:
            return self.since is None and self.until is None
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)

    def read_decision_log(self, path: Path) -> None:
        for number, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise CliError(f"{path}:{number}: not a JSON decision-log event") from None
            if not isinstance(event, dict) or event.get("kind", "decision") != "decision":
                continue
            result = event.get("result")
            if not isinstance(result, dict) or not {"patch", "deny", "warn"} & result.keys():
                continue  # not a hook decision (an AdmissionReview, another path)
            timestamp = event.get("timestamp")
            when = parse_instant(timestamp) if isinstance(timestamp, str) else None
            if not self.in_period(when):
                continue
            airflow = (event.get("input") or {}).get("airflow") if isinstance(event.get("input"), dict) else None
            dag_id = airflow.get("dag_id") if isinstance(airflow, dict) else None
            self.count(result.get("exemptions"), when, dag_id)

    def read_scan(self, path: Path) -> None:
        try:
            document = json.loads(_text(path))
        except ValueError:
            raise CliError(f"{path}: not a JSON document (scan --output json)") from None
        if not isinstance(document, dict) or document.get("command") != "scan":
            raise CliError(f"{path}: not a scan --output json document")
        for task in document.get("tasks") or []:
            outcome = task.get("outcome") if isinstance(task, dict) else None
            if isinstance(outcome, dict):
                self.count(outcome.get("exemptions"), None, task.get("dag_id"))

    def read_config(self, path: Path) -> None:
        try:
            data = load_config(path)
        except BundleError as exc:
            raise CliError(str(exc)) from None
        config: Any = data
        for key in CONFIG_PATH:
            config = config.get(key, {}) if isinstance(config, dict) else {}
        for usage in self.usages.values():
            usage.configured = False
        for name, entry in _named(config.get("exempt") if isinstance(config, dict) else None):
            self._configured(None, name, entry)
        policies = config.get("policies") if isinstance(config, dict) else None
        for policy, setting in (policies or {}).items() if isinstance(policies, dict) else []:
            exempt = setting.get("exempt") if isinstance(setting, dict) else None
            for name, entry in _named(exempt):
                self._configured(str(policy), name, entry)

    def _configured(self, policy: str | None, name: str, entry: dict[str, Any]) -> None:
        usage = self.usage(policy, name)
        usage.configured = True
        for member in ("reason", "ticket", "expires"):  # the configuration is the current word
            value = entry.get(member)
            setattr(usage, member, value if isinstance(value, str) else None)


def _named(exemptions: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(exemptions, dict):
        return []
    return [(str(name), entry) for name, entry in exemptions.items() if isinstance(entry, dict)]


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def _lines(path: Path) -> list[str]:
    return _text(path).splitlines()


# -- the command ------------------------------------------------------------------------------------------------


@click.group()
def exemptions() -> None:
    """Report on the configured exemptions: how many pods each let through (exemptions report ...)."""


@exemptions.command("report")
@click.option(
    "--decision-log",
    "decision_logs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OPA decision-log events, one JSON object a line (OPA's console log or the collector's; repeatable).",
)
@click.option(
    "--scan",
    "scans",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A `scan --output json` document (repeatable); not filtered by --since/--until.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The organisation's configuration (as bundle build --config takes it): also list the exemptions "
    "it configures that no pod used.",
)
@click.option("--since", help="Only decisions at or after: a date (UTC), an RFC 3339 date-time, or 30d / 12h ago.")
@click.option("--until", help="Only decisions before: a date (its start, UTC), a date-time, or 7d / 12h ago.")
@output_options
@handle_errors("exemptions")
def report(  # noqa: PLR0917 - one parameter per click option
    decision_logs: tuple[Path, ...],
    scans: tuple[Path, ...],
    config_file: Path | None,
    since: str | None,
    until: str | None,
    output_format: str,
    color: str,
) -> None:
    """Per exemption, how many pods it let through in a period, from decision logs or a scan: is it still
    needed? With --config, the configured exemptions no pod used are listed too.

    Exit status: 0 the report was made, 2 usage or runtime error.
    """
    output = make_output(output_format, color)
    if not decision_logs and not scans:
        raise CliError("give at least one --decision-log FILE or --scan FILE", fix="see --help")
    now = datetime.now(UTC)
    period = Report(parse_bound(since, now) if since else None, parse_bound(until, now) if until else None)
    for path in decision_logs:
        period.read_decision_log(path)
    for path in scans:
        period.read_scan(path)
    if config_file is not None:
        period.read_config(config_file)
    usages = sorted(period.usages.values(), key=lambda u: (u.policy is not None, u.policy or "", u.name))
    if output.json:
        emit_document(
            "exemptions",
            EXIT_OK,
            {
                "period": {
                    "since": period.since.isoformat() if period.since else None,
                    "until": period.until.isoformat() if period.until else None,
                },
                "sources": {"decision_logs": [str(p) for p in decision_logs], "scans": [str(p) for p in scans]},
                "config": str(config_file) if config_file else None,
                "decisions": period.decisions,
                "exemptions": [_usage_json(u, now) for u in usages],
            },
        )
        raise click.exceptions.Exit(EXIT_OK)
    where = ", ".join(map(str, [*decision_logs, *scans]))
    span = f"since {period.since.isoformat() if period.since else 'the start'}"
    span += f" until {period.until.isoformat()}" if period.until else ""
    table = Table(title=f"exemptions in {period.decisions} decision(s) of {where} ({span})", title_justify="left")
    for column in ("exemption", "pods", "DAGs", "last seen", "expires", "state", "ticket", "reason"):
        table.add_column(column, justify="right" if column in ("pods", "DAGs") else "left")
    styles = {"expired": "bold red", "invalid": "bold red", "expiring": "yellow", "active": "green"}
    for u in usages:
        current = state(u, now)
        table.add_row(
            u.key,
            str(u.pods),
            str(len(u.dag_ids)),
            u.last_seen.isoformat(timespec="seconds") if u.last_seen else "-",
            u.expires or "never",
            Text(current, style=styles[current]),
            u.ticket or "-",
            u.reason or "-",
        )
    output.console.print(table)
    unused = [u.key for u in usages if u.pods == 0]
    if unused:
        output.console.print()
        line = Text("never used in this period (delete them if nothing needs them): ", style="bold yellow")
        line.append(", ".join(unused))
        output.console.print(line)
    if config_file is None:
        output.console.print(Text("(give --config to list the configured exemptions no pod used)", style="dim"))
    raise click.exceptions.Exit(EXIT_OK)


def _usage_json(u: Usage, now: datetime) -> dict[str, Any]:
    return {
        "key": u.key,
        "name": u.name,
        "policy": u.policy,
        "reason": u.reason,
        "ticket": u.ticket,
        "expires": u.expires,
        "state": state(u, now),
        "configured": u.configured,
        "pods": u.pods,
        "dag_ids": sorted(u.dag_ids)[:MAX_DAG_IDS],
        "dags": len(u.dag_ids),
        "first_seen": u.first_seen.isoformat() if u.first_seen else None,
        "last_seen": u.last_seen.isoformat() if u.last_seen else None,
    }


__all__ = ["exemptions"]
