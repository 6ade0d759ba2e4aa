"""``kallos data``: data-quality checks over the store.

``kallos data check`` runs :func:`kallos.data.check.run_checks` on every source's rows,
prints a summary (findings per rule against their limits, the first findings of each rule,
coverage per coin and source) and writes the whole report as JSON. Exit codes: 0 when no
rule exceeds its limit, 1 when one does, 2 on bad input (unknown rule, bad value, no data).

Thresholds: ``--max-findings RULE=N`` (repeatable; ``N = -1`` = unlimited) over
:data:`kallos.data.check.DEFAULT_MAX_FINDINGS`; ``--z-threshold`` and
``--divergence-threshold``; ``stale_run_days`` and ``max_daily_return`` come from the
``[quality]`` section of ``--config`` (a study TOML) or its defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kallos.cli.common import DataDirOpt, DbOpt, OutOpt, fail, no_leftovers
from kallos.config import load_config
from kallos.data import Store, default_database_url, ingest_data_dir
from kallos.data.check import DEFAULT_MAX_FINDINGS, CheckReport, CheckSettings, parse_max_findings, run_checks
from kallos.data.ingest import EMPTY_STORE_HELP
from kallos.data.reconcile import DEFAULT_DIVERGENCE_THRESHOLD
from kallos.exceptions import KallosError, OutputError, StoreError
from kallos.report.files import atomic_write, check_writable

data_app = typer.Typer(no_args_is_help=True, help="Data quality: checks and reports over the store.")


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")


@data_app.command("check")
def check_cmd(
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Study TOML; its [quality] thresholds are used.")
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Where to write the JSON report [default: <out>/data_check.json]."),
    ] = None,
    max_findings: Annotated[
        list[str] | None,
        typer.Option(
            "--max-findings",
            help="RULE=N: fail (exit 1) when RULE has more than N findings; -1 = unlimited (repeatable). "
            f"Defaults: {', '.join(f'{k}={v}' for k, v in DEFAULT_MAX_FINDINGS.items() if v is not None)}.",
        ),
    ] = None,
    z_threshold: Annotated[
        float, typer.Option(min=0, help="Robust z-score of a daily log return that counts as an outlier.")
    ] = 10.0,
    divergence_threshold: Annotated[
        float, typer.Option(min=0, help="Mean |cg/bn - 1| per coin-month that is flagged (fraction).")
    ] = DEFAULT_DIVERGENCE_THRESHOLD,
    show: Annotated[int, typer.Option(min=0, help="Findings listed per rule on screen.")] = 5,
) -> None:
    """Check gaps, stale prices, outliers, missing market caps, source divergence and coverage."""
    path = json_path or out / "data_check.json"
    url = database_url or default_database_url(out)
    try:
        limits = dict(DEFAULT_MAX_FINDINGS) | parse_max_findings(max_findings or [])
        settings = CheckSettings(
            quality=load_config(config).quality,
            z_threshold=z_threshold,
            divergence_threshold=divergence_threshold,
            max_findings=limits,
        )
        with no_leftovers((path.parent,), database_url=url):  # a failed check creates nothing
            store = Store(url, migrate=False)
            if store.is_empty():
                if data_dir is None:
                    raise StoreError(EMPTY_STORE_HELP)
                ingest_data_dir(store, data_dir)
            store.create_schema()
            check_writable(path.parent)
            report = run_checks(store.read_market_data(), settings)
            try:
                atomic_write(path, lambda tmp: tmp.write_text(json.dumps(report.to_dict(), indent=1)))
            except OSError as err:
                raise OutputError(f"cannot write the JSON report {path}: {err.strerror or err}") from None
    except KallosError as err:
        raise fail(err) from None
    _print(report, show)
    Console().print(f"JSON report: {path}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


def _print(report: CheckReport, show: int) -> None:
    out = Console(width=160)
    summary = Table(title="kallos data check")
    for col in ("rule", "findings", "allowed", "status"):
        summary.add_column(col, justify="left" if col == "rule" else "right")
    limits = report.settings.max_findings
    for rule, n in report.counts.items():
        allowed = limits.get(rule)
        bad = rule in report.exceeded
        summary.add_row(
            rule, str(n), "–" if allowed is None else str(allowed), "[red]EXCEEDED[/]" if bad else "ok"
        )
    out.print(summary)
    if show and len(report.findings):
        listing = Table(title=f"Findings (first {show} per rule)")
        for col in ("rule", "coin", "source", "start", "end", "days", "detail"):
            listing.add_column(col)
        for _, g in report.findings.groupby("rule", sort=False):
            for r in g.head(show).itertuples(index=False):
                listing.add_row(
                    r.rule,
                    r.coin_id,
                    r.source,
                    f"{r.start:%Y-%m-%d}",
                    f"{r.end:%Y-%m-%d}",
                    str(r.n_days),
                    r.detail,
                )
        out.print(listing)
    cov = Table(title="Coverage per coin and source")
    for col in ("coin", "source", "first", "last", "rows", "missing days"):
        cov.add_column(col)
    for r in report.coverage.itertuples(index=False):
        cov.add_row(
            r.coin_id, r.source, f"{r.first:%Y-%m-%d}", f"{r.last:%Y-%m-%d}", str(r.rows), str(r.missing_days)
        )
    out.print(cov)
    verdict = (
        "[green]all rules within limits[/]"
        if report.ok
        else "[red]limits exceeded[/]: "
        + ", ".join(f"{k} {n} > {a}" for k, (n, a) in report.exceeded.items())
    )
    out.print(verdict)
