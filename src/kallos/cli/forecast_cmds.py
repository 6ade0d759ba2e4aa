"""``kallos tune``, ``kallos models`` and ``kallos forecasts``: the forecasting lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from kallos.cli.common import DbOpt, OutOpt, fail, no_leftovers, parse_set
from kallos.exceptions import ConfigError, DataValidationError, KallosError, StoreError

models_app = typer.Typer(no_args_is_help=True, help="The model registry: trained models and their hashes.")
forecasts_app = typer.Typer(no_args_is_help=True, help="Forecast evaluation reports.")

__all__ = ["forecasts_app", "models_app", "parse_fold", "register", "tune"]


def parse_fold(text: str) -> pd.Timestamp:
    """The fold cutoff named by ``text``: a test quarter (``2023Q1`` -> cutoff 2022-12-31) or an ISO cutoff.

    Raises
    ------
    DataValidationError
        If ``text`` is neither.
    """
    try:
        if "Q" in text.upper():
            return pd.Period(text.upper(), freq="Q").start_time.normalize() - pd.Timedelta(days=1)
        return pd.Timestamp(text).normalize()
    except (ValueError, TypeError):
        raise DataValidationError(
            f"--fold {text!r}: expected a test quarter such as 2023Q1 or a cutoff date such as 2022-12-31"
        ) from None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tune(
    coin: Annotated[str, typer.Option("--coin", help="Coin id as stored, e.g. bitcoin.")],
    fold: Annotated[str, typer.Option("--fold", help="Test quarter (2023Q1) or cutoff date (2022-12-31).")],
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Trials to add [forecast.tuning.n_trials].")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", help="Registered forecaster to tune: gru, lstm, gru_attention, transformer, ..."
        ),
    ] = "gru",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Study TOML file.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Dotted config override (repeatable).")
    ] = None,
    sampler_seed: Annotated[
        int | None, typer.Option(help="TPE sampler seed; give each machine sharing a study its own.")
    ] = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Tune a neural forecaster for one coin and fold with Optuna; print the Pareto front and the choice.

    Trials are stored beside the Kallos database, so the same command on several machines with
    one --database-url fills one study.
    """
    from kallos.config import load_config
    from kallos.data import Store, build_panel, default_database_url
    from kallos.forecast import ExpandingWalkForward
    from kallos.forecast.tuning import coin_history, optuna_storage, tunable
    from kallos.forecast.tuning import tune as run_tune
    from kallos.pipeline.validate import validate_study

    try:
        cfg = validate_study(load_config(config, parse_set(set_ or [])))
        if model not in tunable():
            raise ConfigError(f"--model {model!r} cannot be tuned; choose from {tunable()}")
        url = database_url or default_database_url(out)
        with no_leftovers(database_url=url):
            store = Store(url, migrate=False)
            if store.is_empty():
                raise StoreError(
                    "the store holds no market data: run `kallos ingest` first (`kallos ingest --source "
                    "binance` needs no API key)"
                )
            store.create_schema()
        panel = build_panel(store.read_market_data(), store.read_coins(), cfg.quality)
        if coin not in panel.coins:
            near = [c for c in panel.coins if coin.lower() in c.lower()][:8]
            raise DataValidationError(f"--coin {coin!r} is not in the panel; similar ids: {near or 'none'}")
        cutoff = parse_fold(fold)
        f = ExpandingWalkForward.from_config(cfg.forecast)
        the_fold = f.fold(cutoff)
        history = coin_history(panel, coin, cutoff)
        storage = optuna_storage(store.url, getattr(store, "schema_name", None))
        result = run_tune(
            history,
            the_fold,
            cfg.forecast,
            storage,
            model=model,
            n_trials=trials,
            seed=cfg.seed,
            sampler_seed=sampler_seed,
            device=cfg.device,
        )
    except KallosError as err:
        raise fail(err) from None
    console = Console(width=180)
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.states.items()))
    console.print(
        f"Study [bold]{result.study_name}[/]: {result.n_trials} trials ({states}); fold cutoff "
        f"{the_fold.cutoff.date()}, validation {the_fold.validation_start.date()}.."
        f"{the_fold.validation_end.date()}, test quarter never seen.",
        highlight=False,
    )
    table = Table(title="Pareto front (validation RMSE down, directional accuracy up)")
    for col in result.pareto.columns:
        table.add_column(str(col), justify="right")
    for _, row in result.pareto.iterrows():
        style = "bold green" if row["number"] == result.chosen["number"] else None
        table.add_row(*(_fmt(v) for v in row.to_list()), style=style)
    console.print(table)
    chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in result.chosen.items())
    console.print(
        "Chosen (lowest RMSE among Pareto trials with directional accuracy >= 50 %, else lowest RMSE): "
        f"{chosen}",
        highlight=False,
    )


@models_app.command("list")
def models_list(
    coin: Annotated[str | None, typer.Option("--coin", help="Only this coin.")] = None,
    model_type: Annotated[
        str | None, typer.Option("--type", help="Only this model type (gru, lstm, ...).")
    ] = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """List the trained models in the registry, newest first."""
    from kallos.data import Store, default_database_url
    from kallos.forecast.model_store import ModelRegistry

    url = database_url or default_database_url(out)
    try:
        with no_leftovers(database_url=url, always=True):  # listing creates no database
            store = Store(url)
            rows = ModelRegistry(store, out / "models").entries(coin_id=coin, model_type=model_type)
            store.dispose()
    except KallosError as err:
        raise fail(err) from None
    table = Table(title=f"Model registry: {len(rows)} models")
    for col in ("model_id", "type", "coin", "train", "validation", "cutoff", "val RMSE", "val DA", "created"):
        table.add_column(col)
    for _, r in rows.iterrows():
        m = r["val_metrics"] or {}
        table.add_row(
            r["model_id"][:12],
            r["model_type"],
            r["coin_id"],
            f"{r['train_start']:%Y-%m-%d}..{r['train_end']:%Y-%m-%d}",
            f"{r['val_start']:%Y-%m-%d}..{r['val_end']:%Y-%m-%d}" if pd.notna(r["val_start"]) else "–",
            f"{r['test_start']:%Y-%m-%d}",
            _fmt(m.get("rmse", "–")),
            _fmt(m.get("directional_accuracy", "–")),
            f"{pd.Timestamp(r['created_at']):%Y-%m-%d %H:%M}",
        )
    Console(width=180).print(table)


@forecasts_app.command("report")
def forecasts_report(
    run: Annotated[Path, typer.Option("--run", help="A run directory holding forecasts.parquet.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Output file [<run>/forecast_report.html].")
    ] = None,
    baseline: Annotated[str, typer.Option(help="Reference forecaster.")] = "naive_persistence",
) -> None:
    """Write a standalone HTML forecast-evaluation report (accuracy, Diebold-Mariano, residuals, decay)."""
    from kallos.evaluation.forecast_metrics import forecast_evaluation
    from kallos.report.forecasts import write_forecast_report

    source = run / "forecasts.parquet"
    try:
        if not source.is_file():
            raise DataValidationError(f"{source}: not found; pass a run directory written by `kallos run`")
        evaluation = forecast_evaluation(pd.read_parquet(source), baseline=baseline)
        path = write_forecast_report(html or run / "forecast_report.html", evaluation)
    except KallosError as err:
        raise fail(err) from None
    Console().print(f"Forecast report: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``tune``, ``models`` and ``forecasts`` to ``app``."""
    app.command("tune")(tune)
    app.add_typer(models_app, name="models")
    app.add_typer(forecasts_app, name="forecasts")
