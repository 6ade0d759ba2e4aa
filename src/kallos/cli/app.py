"""The ``kallos`` command line: a thin adapter over the library.

Each command parses options, loads and validates a config, calls one library function
and writes under an explicit ``--out`` directory.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kallos import __version__
from kallos.cli import data_cmd, db_cmd, forecast_cmds, ingest_cmd, trade_cmd
from kallos.cli.common import DataDirOpt, DbOpt, OutOpt, console, fail, no_leftovers, parse_set
from kallos.cli.progress import RichProgress
from kallos.compute import open_engine
from kallos.config import PRESETS, REPORT_ASSETS, SCHEDULER_ENV, load_config, preset_path
from kallos.data import Store, default_database_url
from kallos.exceptions import KallosError
from kallos.pipeline import check_scheduler, execute_study
from kallos.pipeline.validate import validate_study

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Kallos: do GRU return forecasts build better crypto portfolios than simple estimates, after costs?",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kallos {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Kallos command line."""


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Study TOML file (unknown keys are errors).")
    ] = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
    data_dir: DataDirOpt = None,
    top_n: Annotated[int | None, typer.Option(help="Coins in the monthly universe [default: 5].")] = None,
    universe: Annotated[
        str | None,
        typer.Option(
            "--universe",
            help="Universe method: market_cap_daily or cmc_snapshots (survivorship-free, "
            "CoinMarketCap monthly top-N) [default: market_cap_daily].",
        ),
    ] = None,
    start: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First test day [default: 2022-01-01].")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last test day [default: 2024-12-31].")
    ] = None,
    rebalance: Annotated[
        str | None, typer.Option(help="weekly (Sunday close) or monthly [default: weekly].")
    ] = None,
    cost_bps: Annotated[
        float | None, typer.Option(help="Cost per side, basis points of traded notional [default: 10].")
    ] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            help="Objective(s): max_sharpe, min_volatility, max_quadratic_utility, max_return "
            "[default: max_sharpe, max_quadratic_utility]."
        ),
    ] = None,
    horizon: Annotated[int | None, typer.Option(help="Forecast horizon in days [default: 7].")] = None,
    covariance: Annotated[str | None, typer.Option(help="sample or ledoit_wolf [default: sample].")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="GRU training epochs cap [default: 30].")] = None,
    seed: Annotated[int | None, typer.Option(help="Base random seed [default: 42].")] = None,
    device: Annotated[str | None, typer.Option(help="torch device for the GRU [default: cpu].")] = None,
    n_jobs: Annotated[int | None, typer.Option(help="Worker processes for training [default: 2].")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Any config key, dotted: --set forecast.models.gru.hidden_size=64 (repeatable)."
        ),
    ] = None,
    export: Annotated[
        str | None,
        typer.Option(help="Also export tables to out/<run-id>/export/: csv, xlsx or csv,xlsx."),
    ] = None,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Tune every neural model per coin and quarter with Optuna inside its training window "
            "(forecast.tuning.enabled; budget forecast.tuning.n_trials, default 50).",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Where jobs run: local (a Dask LocalCluster, n_jobs workers), none (this process) or "
            f"tcp://HOST:8786 (a running `dask scheduler`) [default: ${SCHEDULER_ENV} or local].",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=f"A study shipped with Kallos instead of --config: {', '.join(PRESETS)}."),
    ] = None,
    report_assets: Annotated[
        str | None,
        typer.Option(
            "--report-assets",
            help="How report.html gets plotly.js: inline (embedded, one offline file) or shared "
            "(plotly.min.js written beside it, loaded by a relative <script src>; a much smaller "
            "report) [default: report.assets, else inline].",
        ),
    ] = None,
) -> None:
    """Run the study end to end and write out/<run-id>/ (report.html, results.json, Parquet)."""
    from kallos.exceptions import ConfigError
    from kallos.report.export import EXPORT_FORMATS, export_results

    export_formats = [f.strip().lower() for f in (export or "").split(",") if f.strip()]
    if unknown := [f for f in export_formats if f not in EXPORT_FORMATS]:
        raise fail(ConfigError(f"--export: unknown format(s) {unknown}; use any of {sorted(EXPORT_FORMATS)}"))
    if report_assets is not None and report_assets not in REPORT_ASSETS:
        choices = ", ".join(REPORT_ASSETS)
        raise fail(ConfigError(f"--report-assets: {report_assets!r} is not one of {choices}"))
    overrides: dict[str, Any] = {}
    flags = {
        "universe.top_n": top_n,
        "universe.method": universe,
        "backtest.start": start.date().isoformat() if start else None,
        "backtest.end": end.date().isoformat() if end else None,
        "backtest.rebalance": rebalance,
        "backtest.cost_bps": cost_bps,
        "portfolio.objectives": objective or None,
        "forecast.horizon": horizon,
        "portfolio.covariance": covariance,
        "forecast.training.max_epochs": max_epochs,
        "seed": seed,
        "device": device,
        "n_jobs": n_jobs,
        "forecast.tuning.enabled": True if tune else None,
        "compute.scheduler": scheduler or os.environ.get(SCHEDULER_ENV) or None,
        "report.assets": report_assets,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    try:
        if preset is not None and config is not None:
            raise ConfigError("--preset and --config both given; use one (--set still applies)")
        source = preset_path(preset) if preset is not None else config
        overrides.update(parse_set(set_ or []))
        cfg = validate_study(load_config(source, overrides))
        url = database_url or default_database_url(out)
        with no_leftovers((out,), database_url=url):  # a failed run leaves no new file or table
            store = Store(url, migrate=False)
            check_scheduler(cfg.compute.scheduler, store)  # before connecting to any cluster
            with open_engine(cfg.compute.scheduler, cfg.n_jobs) as engine:
                if engine.dashboard_link:
                    console.print(f"Dask {engine.name} cluster, dashboard: {engine.dashboard_link}")
                # Training, tuning and the calibration replications all run on the engine.
                outcome = execute_study(
                    cfg,
                    store,
                    out,
                    data_dir=data_dir,
                    progress=RichProgress(console),
                    map_fn=engine.map,
                    engine=engine,
                )
        exported = export_results(outcome.run_dir, export_formats) if export_formats else {}
    except KallosError as err:
        raise fail(err) from None
    _summary(outcome)
    if exported:
        console.print(f"Exported {len(exported)} files to {outcome.run_dir / 'export'}")


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:+.1%}"


def _summary(outcome) -> None:
    result = outcome.result
    cfg = result.config
    table = Table(
        title=f"Net of {cfg.backtest.cost_bps:g} bps costs, {cfg.backtest.start} to {cfg.backtest.end}"
    )
    for col in ("variant", "CAGR", "vol", "Sharpe", "max DD", "turnover/yr", "fallbacks"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for key, m in result.metrics.items():
        net = m["net"]
        d = result.decisions[result.decisions["key"] == key]
        table.add_row(
            key,
            _pct(net.get("cagr")),
            _pct(net.get("annual_volatility")),
            f"{net.get('sharpe', float('nan')):.2f}",
            _pct(net.get("max_drawdown")),
            f"{net.get('turnover_annual', float('nan')):.1f}",
            f"{int(d['fallback'].sum())}/{len(d)}",
        )
    out = Console()
    imported = outcome.ingested
    if imported is not None:
        rows = ", ".join(f"{n} {t}" for t, n in imported.rows.items())
        out.print(f"Imported {len(imported.files)} files ({rows}); {len(imported.notes)} notes:")
        for note in imported.notes:
            out.print(f"  {note}", highlight=False)
    out.print(table)
    stats = result.statistics
    if stats is not None and len(stats.verdicts):
        v = stats.verdicts
        better = v[v["verdict"].isin(["a better", "b better"])]
        ev = cfg.evaluation
        out.print(
            f"Primary family: {len(better)} of {len(v)} comparisons significant after StepM (nominal level "
            f"{ev.primary_level:g}, calibrated for a {ev.alpha:g} familywise false-positive rate); median "
            f"minimum detectable Sharpe gap {v['min_detectable_gap'].median():.2f}.",
            highlight=False,
        )
        for r in better.itertuples(index=False):
            winner, loser = (r.a, r.b) if r.verdict == "a better" else (r.b, r.a)
            out.print(f"  {winner} beats {loser} (Sharpe gap {abs(r.sharpe_diff):.2f})", highlight=False)
    out.print(f"Finished in {outcome.wall_seconds:.0f} s. Report: [bold]{outcome.run_dir / 'report.html'}[/]")


for _module in (ingest_cmd, db_cmd, data_cmd, forecast_cmds, trade_cmd):
    _module.register(app)


def main() -> None:
    app()
