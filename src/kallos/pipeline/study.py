"""The study: from a cleaned panel to forecasts, portfolios, backtests and statistics.

:func:`run_study` is pure computation (no files, no database); :mod:`kallos.pipeline.persist`
writes what it returns. The time discipline, stage by stage:

* the universe for month ``m+1`` is chosen at the close of the last day of month ``m``;
* a forecaster serving decisions in ``[T, T_next)`` is fitted on data up to ``T`` only;
* a decision at the close of ``t`` uses forecasts made at ``t`` and a covariance of the
  trailing ``cov_lookback`` daily returns ending at ``t``;
* the backtest earns returns from ``t + 1``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd

from kallos.backtest import drift_weights, run_backtest
from kallos.compute import Engine
from kallos.config import StudyConfig
from kallos.data.panel import MarketPanel
from kallos.data.reconcile import price_divergence
from kallos.data.universe import (
    build_universe,
    capped_weights,
    cmc_market_cap_check,
    month_starts,
    universe_on,
)
from kallos.evaluation import forecast_evaluation, performance_metrics
from kallos.evaluation.battery import TrialCount, evaluate
from kallos.evaluation.calibration import CalibrationResult, CalibrationSettings, calibrate
from kallos.evaluation.primary import PrimaryFamily, declare_primary_family
from kallos.exceptions import ConfigError, DataValidationError
from kallos.features import forward_log_return
from kallos.forecast import (
    FORECASTERS,
    CoinHistory,
    ExpandingWalkForward,
    Fold,
    ForecastJob,
    JobResult,
    coin_history,
    forecasts_frame,
    is_baseline,
    job_names,
    make_forecaster,
    stable_seed,
    with_ensembles,
)
from kallos.forecast.model_store import ModelRegistry, RegistryStats, run_jobs_with_registry
from kallos.forecast.tuned import (
    StudySummary,
    TrialCounter,
    TuningStorage,
    study_names,
    total_budget,
    tune_jobs,
)
from kallos.forecast.tuning import count_trials
from kallos.pipeline.progress import NullProgress, Progress
from kallos.pipeline.results import Decisions, StudyResult
from kallos.pipeline.validate import validate_study
from kallos.portfolio import (
    BENCHMARKS,
    OBJECTIVES,
    ForecastStrategy,
    MeanVariance,
    RebalanceContext,
    Strategy,
    cov_matrix,
    to_annual_expected_returns,
)

__all__ = [
    "Compute",
    "Decisions",
    "PeriodDecision",
    "StudyResult",
    "build_strategies",
    "build_strategy",
    "decide",
    "decide_jobs",
    "decide_period",
    "decision_calendar",
    "primary_family",
    "run_study",
]


def decision_calendar(
    start: pd.Timestamp, end: pd.Timestamp, rebalance: str, weekday: str = "SUN"
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Decision dates and universe reconstitution dates for a test period.

    Decisions are closes whose trades earn from the next day: the first is ``start - 1``
    and the last ``end - 1``. Weekly decisions fall on ``weekday`` (default Sunday, a pandas
    ``W-<DAY>`` anchor: ``MON`` .. ``SUN``); month ends are always decisions because the
    universe is re-selected there.

    Returns
    -------
    (decision_dates, reconstitution_dates), both sorted.
    """
    first, last = pd.Timestamp(start) - pd.Timedelta(days=1), pd.Timestamp(end) - pd.Timedelta(days=1)
    month_ends = pd.date_range(first, last, freq="ME")
    recon = month_ends.union(pd.DatetimeIndex([first]))
    dates = recon
    if rebalance == "weekly":
        dates = dates.union(pd.date_range(first, last, freq=f"W-{weekday}"))
    return dates, recon


def build_strategy(config: StudyConfig, key: str) -> Strategy:
    """One strategy by its variant key: ``<forecaster>/<objective>`` or a benchmark name.

    Raises
    ------
    ConfigError
        If ``key`` names no registered forecaster and objective, nor a benchmark.
    """
    if key == "market_cap":
        return BENCHMARKS["market_cap"](config.universe.benchmark_max_weight)
    if key in BENCHMARKS:
        return BENCHMARKS[key]()
    name, _, objective = key.partition("/")
    if name not in FORECASTERS or objective not in OBJECTIVES:
        raise ConfigError(
            f"strategy {key!r}: expected <forecaster>/<objective> with a forecaster of {sorted(FORECASTERS)} "
            f"and an objective of {sorted(OBJECTIVES)}, or one of {sorted(BENCHMARKS)}"
        )
    return ForecastStrategy(name, MeanVariance.from_config(config.portfolio, objective))


def build_strategies(config: StudyConfig) -> list[Strategy]:
    """Forecast strategies (forecaster × objective) through one optimiser, plus the benchmarks."""
    keys = [f"{name}/{o}" for o in config.portfolio.objectives for name in config.forecast.forecasters]
    return [build_strategy(config, key) for key in [*keys, "market_cap", "equal_weight"]]


def primary_family(config: StudyConfig) -> PrimaryFamily:
    """The study's primary family, from the configuration alone (declared before any data is read).

    Learned forecasters (every registered one that is not a baseline) against the baselines
    (:func:`kallos.forecast.baselines`) and the market-cap benchmark, per objective.
    """
    variants = {s.key: (s.name, s.objective) for s in build_strategies(config)}
    names = config.forecast.forecasters
    return declare_primary_family(
        variants,
        learned=[n for n in names if not is_baseline(n)],
        baselines=[n for n in names if is_baseline(n)],
        benchmark="market_cap",
    )


def _investable(panel: MarketPanel, universe: pd.DataFrame, day: pd.Timestamp) -> list[str]:
    """Universe members at the close of ``day`` with a known close that day.

    A member whose prices have ended (delisted or migrated: MATIC after 2024-09) is neither
    forecast nor bought once its last known close is behind it; the backtest sells it.
    """
    if day not in panel.close.index:  # beyond the data: nothing is known yet
        return []
    return [c for c in universe_on(universe, day) if pd.notna(panel.close.at[day, c])]


def _forecast_jobs(
    config: StudyConfig,
    panel: MarketPanel,
    folds: list[Fold],
    histories: dict[str, CoinHistory],
    universe: pd.DataFrame,
    first_decision: pd.Timestamp,
    forecasters: tuple[str, ...] | None = None,
) -> list[ForecastJob]:
    """One job per (forecaster, fold, coin): forecasts every day the coin is investable.

    ``forecasters`` (default ``config.forecast.forecasters``) restricts the jobs to some names.
    An ensemble is no job of its own: its members' jobs are added (once), and
    :func:`_forecast` combines their forecasts.
    """
    names = config.forecast.forecasters if forecasters is None else forecasters
    names = job_names(names, config.forecast)
    jobs = []
    for fold in folds:
        days = pd.date_range(max(fold.test_start, first_decision), fold.test_end, freq="D")
        members: dict[str, list[pd.Timestamp]] = {}
        for day in days:
            for coin in _investable(panel, universe, day):
                members.setdefault(coin, []).append(day)
        for name in names:
            for coin in sorted(members):
                seed = stable_seed(config.seed, name, coin, fold.key)
                forecaster = make_forecaster(name, config.forecast, seed=seed, device=config.device)
                dates = pd.DatetimeIndex(members[coin])
                jobs.append(ForecastJob(forecaster, fold, histories[coin].upto(dates.max()), dates))
    return jobs


def _contexts(
    panel: MarketPanel,
    config: StudyConfig,
    universe: pd.DataFrame,
    forecasts: pd.DataFrame,
    dates: pd.DatetimeIndex,
    recon: pd.DatetimeIndex,
):
    horizon = config.forecast.horizon
    lookback = config.portfolio.cov_lookback
    by_date = {d: g for d, g in forecasts.groupby("as_of")}
    for date in dates:
        coins = _investable(panel, universe, date)
        window = panel.returns.loc[date - pd.Timedelta(days=lookback - 1) : date, coins]
        cov = cov_matrix(
            window,
            config.portfolio.covariance,
            halflife=config.portfolio.cov_halflife,
            return_cap=config.portfolio.cov_return_cap,
        )
        month = (date + pd.Timedelta(days=1)).to_period("M").to_timestamp()
        caps = universe.loc[universe["month"] == month].set_index("coin_id")["market_cap"]
        expected = {}
        today = by_date.get(date)
        if today is not None:
            for name, g in today.groupby("forecaster"):
                f = g.set_index("coin_id")["forecast"].reindex(coins)
                expected[name] = to_annual_expected_returns(f, horizon)
        yield RebalanceContext(date, coins, cov, caps, expected, date in recon, returns=window)


def _decide(
    strategies: list[Strategy],
    contexts,
    n_dates: int,
    progress: Progress,
    returns: pd.DataFrame | None = None,
    cash_rate: float = 0.0,
    held: Mapping[str, pd.Series] | None = None,
):
    """Target weights per strategy and date; one decisions row each with how they were obtained.

    ``returns`` (daily simple): when given, each strategy receives its previous target drifted to
    ``ctx.date`` (the backtest's rule) as ``current_weights``, for a turnover limit. ``held``
    (strategy key -> weights already drifted to the first context's date, e.g. an account's
    holdings) is the ``current_weights`` of a strategy that has no previous target here.
    Decision columns: ``objective_used``, ``solver`` ("none" for benchmarks/equal weight),
    ``fallback`` (bool) and ``fallback_chain`` (failed attempts then the one used, joined by " → ").
    """
    decisions, weights = [], []
    last: dict[str, tuple[pd.Timestamp, pd.Series]] = {}
    with progress.stage("Optimising portfolios", total=n_dates) as bar:
        for ctx in contexts:
            for s in strategies:
                if not s.trades_on(ctx):
                    continue
                current = None
                if returns is not None and s.key in last:
                    since, previous = last[s.key]
                    window = returns.loc[since + pd.Timedelta(days=1) : ctx.date]
                    current = drift_weights(previous, window, cash_rate)
                elif held is not None and s.key in held:
                    current = held[s.key]
                res = s.target(ctx, current)
                last[s.key] = (ctx.date, res.weights)
                solver = getattr(res, "solver", "") or "none"
                chain = [*res.fallback_chain, f"{res.objective_used} ({solver})"] if res.used_fallback else []
                decisions.append(
                    (
                        s.name,
                        s.objective or "none",
                        s.key,
                        ctx.date,
                        res.objective_used,
                        solver,
                        res.used_fallback,
                        " → ".join(chain),
                    )
                )
                w = res.weights[res.weights > 0]
                weights.extend(
                    (s.name, s.objective or "none", s.key, ctx.date, c, float(v)) for c, v in w.items()
                )
            bar.advance()
    dcols = ["strategy", "objective", "key", "date", "objective_used", "solver", "fallback", "fallback_chain"]
    wcols = ["strategy", "objective", "key", "date", "coin_id", "weight"]
    return pd.DataFrame(decisions, columns=dcols), pd.DataFrame(weights, columns=wcols)


def _universe(
    panel: MarketPanel, config: StudyConfig, months: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The universe of ``months`` (each chosen at the close of the day before it) with benchmark
    weights, and the CoinMarketCap market-cap cross-check behind it."""
    checks = cmc_market_cap_check(panel, months, config.universe)
    universe = build_universe(panel, months, config.universe, checks)
    universe["benchmark_weight"] = universe.groupby("month", group_keys=False)["market_cap"].transform(
        lambda caps: capped_weights(caps, config.universe.benchmark_max_weight)
    )
    return universe, checks


def _histories(
    panel: MarketPanel, coins: list[str], through: pd.Timestamp, progress: Progress
) -> dict[str, CoinHistory]:
    """Causal indicator features and closes of ``coins`` up to ``through``."""
    with progress.stage("Computing features", total=len(coins)) as bar:
        histories = {}
        for coin in coins:
            histories[coin] = coin_history(panel, coin, through)
            bar.advance()
    return histories


def _splitter(config: StudyConfig) -> ExpandingWalkForward:
    return ExpandingWalkForward.from_config(config.forecast)


@dataclass(frozen=True)
class Compute:
    """Where the study's jobs run and where its tuning studies live (both optional).

    ``engine`` runs training and tuning jobs (default: this process); ``tuning_storage`` holds
    the Optuna studies and is required when ``forecast.tuning.enabled``.
    """

    engine: Engine | None = None
    tuning_storage: TuningStorage | None = None


def _tune(
    jobs: list[ForecastJob], config: StudyConfig, compute: Compute, progress: Progress
) -> tuple[list[ForecastJob], list[StudySummary]]:
    """Tune the tunable jobs (:func:`kallos.forecast.tuned.tune_jobs`), one progress bar over all trials."""
    if compute.tuning_storage is None:
        raise ConfigError(
            "forecast.tuning.enabled needs a database for the Optuna studies; run through "
            "`kallos run --tune` or pass Compute(tuning_storage=TuningStorage(url))"
        )
    budget = total_budget(jobs, config.forecast)
    if budget == 0:
        return jobs, []
    counter = TrialCounter(compute.tuning_storage, study_names(jobs, config.forecast))
    stop = threading.Event()
    n_trials = config.forecast.tuning.n_trials
    title = f"Tuning {budget // n_trials} studies x {n_trials} trials"
    with progress.stage(title, total=budget) as bar:
        seen = 0

        def poll() -> None:
            nonlocal seen
            while True:
                c = counter.counts()
                done = min(c["done"], budget)
                note = (
                    f"complete {c['COMPLETE']} · pruned {c['PRUNED']} · failed {c['FAIL']} "
                    f"· running {c['RUNNING']}"
                )
                bar.advance(done - seen, note=note)
                seen = done
                if stop.wait(2.0):
                    return

        watcher = threading.Thread(target=poll, name="kallos-tuning-progress", daemon=True)
        watcher.start()
        try:
            tuned, summaries = tune_jobs(jobs, config, compute.tuning_storage, compute.engine)
        finally:
            stop.set()
            watcher.join()
            counter.close()
    return tuned, summaries


def _forecast(
    jobs: list[ForecastJob],
    config: StudyConfig,
    registry: ModelRegistry | None,
    progress: Progress,
    names: tuple[str, ...] | None = None,
    compute: Compute | None = None,
) -> tuple[list[JobResult], RegistryStats, pd.DataFrame, list[StudySummary]]:
    """Run (or serve from the registry) the walk-forward jobs; results, registry counts, forecasts, tuning.

    With ``forecast.tuning.enabled`` the tunable jobs are tuned first and fitted with their
    chosen trials. The forecasts frame holds ``names`` (default ``config.forecast.forecasters``),
    ensembles combined from their members' forecasts; members not in ``names`` are left out.
    """
    compute = compute or Compute()
    summaries: list[StudySummary] = []
    if config.forecast.tuning.enabled:
        jobs, summaries = _tune(jobs, config, compute, progress)
    with progress.stage("Training forecasters (walk-forward)", total=len(jobs)) as bar:
        results, reuse = run_jobs_with_registry(
            jobs,
            registry,
            engine=compute.engine,
            on_done=lambda r: bar.advance(note=f"{r.forecaster} {r.coin_id} {r.fold.key}"),
        )
    if registry is not None:
        with progress.stage(f"Model registry: {reuse.message()}", total=None):
            pass
    frame = forecasts_frame(results, config.forecast.horizon)
    return (
        results,
        reuse,
        with_ensembles(frame, config.forecast.forecasters if names is None else names, config.forecast),
        summaries,
    )


def _check_reaches(panel: MarketPanel, through: pd.Timestamp) -> None:
    if panel.dates[-1] < through:
        raise DataValidationError(
            f"data end {panel.dates[-1].date()} before {through.date()}: import newer data "
            "or set an earlier backtest.end"
        )


def _walk_forward(
    panel: MarketPanel, config: StudyConfig, through: pd.Timestamp, progress: Progress
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Fold], list[ForecastJob]]:
    """Universe, CMC checks, folds and forecast jobs of every decision up to ``through``."""
    bt = config.backtest
    start, end = pd.Timestamp(bt.start), pd.Timestamp(bt.end)
    all_dates, _ = decision_calendar(start, end, bt.rebalance, bt.rebalance_day)
    first_decision = all_dates[0]
    # Universe: month m+1 chosen at the close of the last day of month m.
    universe, checks = _universe(panel, config, month_starts(start, min(end, through + pd.Timedelta(days=1))))
    coins = sorted(universe["coin_id"].unique())
    # Features (causal indicators) and walk-forward forecasts, every day a coin is investable.
    histories = _histories(panel, coins, through, progress)
    folds = _splitter(config).split(first_decision, through)
    jobs = _forecast_jobs(config, panel, folds, histories, universe, first_decision)
    return universe, checks, folds, jobs


def decide_jobs(panel: MarketPanel, config: StudyConfig) -> list[ForecastJob]:
    """The walk-forward jobs :func:`decide` would run for ``config`` (nothing is trained).

    One per (forecaster, fold, coin), ensembles expanded into their members; used to size a
    study (e.g. ``benchmarks/tuned_study.py`` projects the tuned study's cost from it).
    """
    validate_study(config)
    through = pd.Timestamp(config.backtest.end) - pd.Timedelta(days=1)
    _check_reaches(panel, through)
    return _walk_forward(panel, config, through, NullProgress())[3]


def decide(
    panel: MarketPanel,
    config: StudyConfig,
    through: pd.Timestamp | None = None,
    progress: Progress | None = None,
    registry: ModelRegistry | None = None,
    compute: Compute | None = None,
) -> Decisions:
    """Universe, forecasts and target weights for every decision date up to ``through``.

    Parameters
    ----------
    panel : cleaned panel; it must reach ``through`` (later rows are never needed).
    through : last decision date (default ``backtest.end - 1``). Decisions at or before
        ``through`` depend only on panel rows at or before it (the no-look-ahead test
        compares them with and without later data).
    registry : model registry; registered models are reused instead of retrained and new
        ones registered (see :mod:`kallos.forecast.model_store`). None trains everything.
    compute : execution engine and tuning storage (:class:`Compute`; default: this process).

    Raises
    ------
    DataValidationError
        If the panel ends before ``through``.
    """
    progress = progress or NullProgress()
    validate_study(config)
    bt = config.backtest
    start, end = pd.Timestamp(bt.start), pd.Timestamp(bt.end)
    last_day = end - pd.Timedelta(days=1)
    through = last_day if through is None else min(pd.Timestamp(through), last_day)
    _check_reaches(panel, through)
    all_dates, recon = decision_calendar(start, end, bt.rebalance, bt.rebalance_day)
    dates = all_dates[all_dates <= through]

    universe, checks, folds, jobs = _walk_forward(panel, config, through, progress)
    results, reuse, forecasts, tuning = _forecast(jobs, config, registry, progress, compute=compute)

    strategies = build_strategies(config)
    contexts = _contexts(panel, config, universe, forecasts, dates, recon)
    limited = config.portfolio.turnover_limit is not None
    decisions, weights = _decide(
        strategies,
        contexts,
        len(dates),
        progress,
        returns=panel.returns if limited else None,
        cash_rate=config.backtest.cash_rate,
    )
    return Decisions(
        through,
        universe,
        folds,
        dates,
        forecasts,
        results,
        decisions,
        weights,
        strategies,
        reuse if registry is not None else None,
        checks,
        tuning,
    )


@dataclass(frozen=True)
class PeriodDecision:
    """One strategy's decision at one close, computed by the functions :func:`decide` uses.

    Attributes
    ----------
    date : the decision date (a close); trades go into ``date + 1``.
    key : the strategy's variant key (``historical_mean/max_sharpe``, ``market_cap``).
    trades : False when the strategy does not rebalance at ``date`` (the market-cap benchmark
        between reconstitutions): the holdings drift and ``weights`` is empty.
    is_reconstitution : True when the universe is re-selected at ``date``.
    universe : investable coins at ``date`` (the universe of ``date + 1``'s month with a known close).
    members : the universe of ``date + 1``'s month, investable or not (a member whose prices ended).
    weights : target weights (index coin ids, only coins with weight > 0; sum 1, or <= 1 with cash).
    decision : the decisions row (``objective_used``, ``solver``, ``fallback``, ``fallback_chain``).
    forecasts : the strategy's forecasts at ``date`` (:func:`kallos.forecast.forecasts_frame` rows).
    fold : the walk-forward fold whose models made the forecasts.
    registry_stats : how many models the registry served (None without one).
    """

    date: pd.Timestamp
    key: str
    trades: bool
    is_reconstitution: bool
    universe: list[str]
    members: list[str]
    weights: pd.Series
    decision: dict
    forecasts: pd.DataFrame = field(repr=False)
    fold: Fold = field(repr=False)
    registry_stats: RegistryStats | None = None


def decide_period(
    panel: MarketPanel,
    config: StudyConfig,
    date: pd.Timestamp,
    key: str,
    first_decision: pd.Timestamp,
    *,
    current_weights: pd.Series | None = None,
    registry: ModelRegistry | None = None,
    progress: Progress | None = None,
    compute: Compute | None = None,
) -> PeriodDecision:
    """The decision of strategy ``key`` at the close of ``date``, as :func:`decide` would take it.

    It is the decision :func:`decide` takes at ``date`` for a backtest starting the day after
    ``first_decision`` (``backtest.start = first_decision + 1``), through the same functions:
    the same universe, the walk-forward fold holding ``date`` with the same jobs (forecasts of
    every day the coin is investable from the fold's start or ``first_decision``, so recurrent
    forecasts are bit-identical), the same covariance, optimiser and fallback chain. Only that
    fold is forecast and only ``date`` optimised, so a period costs one fold's forecasts (served
    by ``registry`` once trained) and one optimisation.

    Parameters
    ----------
    panel : cleaned panel reaching ``date`` (later rows are never read).
    date : the decision date; it must be on the decision calendar that starts at ``first_decision``.
    key : variant key (see :func:`build_strategy`).
    first_decision : the first decision of the calendar (a trading account's first period).
    current_weights : holdings at ``date`` as weights of the pre-trade value (index coin ids;
        the rest is cash); the optimiser's ``current_weights`` when ``portfolio.turnover_limit`` is
        set (the backtest uses its previous target drifted to ``date``, the same quantity).
    registry : model registry serving and registering the recurrent models.
    compute : execution engine and tuning storage (with ``forecast.tuning.enabled`` the fold's
        studies are run, or read back complete from the storage, exactly as :func:`decide` does).

    Raises
    ------
    DataValidationError
        If the panel ends before ``date`` or ``date`` is not a decision date of the calendar.
    ConfigError
        If ``key`` names no strategy.
    """
    progress = progress or NullProgress()
    validate_study(config)
    date, first = pd.Timestamp(date), pd.Timestamp(first_decision)
    day = pd.Timedelta(days=1)
    _check_reaches(panel, date)
    bt = config.backtest
    dates, recon = decision_calendar(first + day, date + day, bt.rebalance, bt.rebalance_day)
    if date not in dates:
        raise DataValidationError(
            f"{date.date()} is not a decision date of the {bt.rebalance} calendar starting "
            f"{first.date()} (decisions fall on {bt.rebalance_day} closes and month ends)"
        )
    strategy = build_strategy(config, key)
    fold = _splitter(config).split(first, date)[-1]
    first_day = max(fold.test_start, first)
    universe, _ = _universe(panel, config, month_starts(first_day + day, date + day))
    names = (strategy.name,) if isinstance(strategy, ForecastStrategy) else ()
    jobs: list[ForecastJob] = []
    if names:
        members = {c for d in pd.date_range(first_day, date) for c in _investable(panel, universe, d)}
        histories = _histories(panel, sorted(members), date, progress)
        jobs = _forecast_jobs(config, panel, [fold], histories, universe, first, names)
    _, reuse, forecasts, _ = _forecast(jobs, config, registry, progress, names, compute)
    (ctx,) = _contexts(panel, config, universe, forecasts, pd.DatetimeIndex([date]), recon)
    limited = config.portfolio.turnover_limit is not None
    held = {key: current_weights} if limited and current_weights is not None else None
    decisions, weights = _decide([strategy], [ctx], 1, progress, held=held)
    trades = len(decisions) == 1
    return PeriodDecision(
        date=date,
        key=key,
        trades=trades,
        is_reconstitution=ctx.is_reconstitution,
        universe=list(ctx.universe),
        members=universe_on(universe, date),
        weights=weights.set_index("coin_id")["weight"].rename("weight"),
        decision=decisions.iloc[0].to_dict() if trades else {},
        forecasts=forecasts[forecasts["as_of"] == date].reset_index(drop=True),
        fold=fold,
        registry_stats=reuse if registry is not None else None,
    )


def _realised(panel: MarketPanel, forecasts: pd.DataFrame, horizon: int) -> pd.Series:
    """The realised label of each forecast (NaN where the panel does not reach it yet)."""
    out = pd.Series(np.nan, index=forecasts.index)
    for coin, g in forecasts.groupby("coin_id"):
        label = forward_log_return(panel.close[coin], horizon)
        out[g.index] = label.reindex(g["as_of"]).to_numpy()
    return out


def _reconciliation(panel: MarketPanel, config: StudyConfig) -> pd.DataFrame:
    """CoinGecko vs Binance divergence per coin-month (empty when one source is absent)."""
    cg, bn = panel.source_close.get("coingecko"), panel.source_close.get("binance")
    if cg is None or bn is None:
        return price_divergence(pd.DataFrame(), pd.DataFrame())
    return price_divergence(cg, bn, config.universe.divergence_threshold)


def run_study(
    panel: MarketPanel,
    config: StudyConfig,
    progress: Progress | None = None,
    registry: ModelRegistry | None = None,
    trials: TrialCount | int = 0,
    map_fn=map,
    compute: Compute | None = None,
) -> StudyResult:
    """Run the walk-forward study on ``panel`` (see the module docstring).

    The primary family of comparisons is declared from ``config`` first, before any data is
    read. ``trials`` is what the deflated Sharpe ratio counts besides the study's forecast-driven
    variants (:class:`~kallos.evaluation.battery.TrialCount`; an int is the number of stored
    tuning trials). ``map_fn`` runs the calibration replications (``executor.map`` to spread them
    over processes).

    Raises
    ------
    DataValidationError
        If the panel does not cover the test period plus the history it needs.
    """
    progress = progress or NullProgress()
    validate_study(config)
    family = primary_family(config)
    with progress.stage(
        f"Primary family declared: {len(family.comparisons)} comparisons "
        f"({', '.join(family.learned) or 'no learned model'} vs "
        f"{', '.join([*family.baselines, family.benchmark])})",
        total=None,
    ):
        pass
    bt = config.backtest
    start, end = pd.Timestamp(bt.start), pd.Timestamp(bt.end)
    if panel.dates[-1] < end:
        raise DataValidationError(
            f"data end {panel.dates[-1].date()} before backtest.end {end.date()}: import newer data "
            "or set an earlier backtest.end"
        )
    d = decide(panel, config, progress=progress, registry=registry, compute=compute)
    if d.tuning and compute is not None and compute.tuning_storage is not None:
        # This run's tuning trials are stored now: count them (and every other stored trial).
        stored = count_trials(compute.tuning_storage.url, compute.tuning_storage.schema_name)
        base = trials if isinstance(trials, TrialCount) else TrialCount()
        trials = replace(base, tuning=stored)
    forecasts = d.forecasts.assign(realised=_realised(panel, d.forecasts, config.forecast.horizon))

    backtests, variants = {}, {}
    # backtest.compare_cost_bps: the same weights traded at a second cost, for its net metrics only.
    compare: dict[str, dict] | None = None if bt.compare_cost_bps is None else {}
    with progress.stage("Backtesting", total=len(d.strategies)) as bar:
        for s in d.strategies:
            w = d.weights[d.weights["key"] == s.key].pivot(index="date", columns="coin_id", values="weight")
            trade = partial(
                run_backtest,
                w,
                panel.returns,
                end,
                slippage_bps=bt.slippage_bps,
                allow_cash=config.portfolio.allow_cash,
                cash_rate=bt.cash_rate,
            )
            backtests[s.key] = trade(cost_bps=bt.cost_bps)
            if compare is not None:
                res = trade(cost_bps=bt.compare_cost_bps)
                compare[s.key] = performance_metrics(
                    res.returns_net.loc[start:end],
                    turnover=res.turnover,
                    holdings=res.holdings,
                    var_level=config.evaluation.var_level,
                )
            variants[s.key] = (s.name, s.objective)
            bar.advance()

    with progress.stage("Evaluating", total=None):
        var_level = config.evaluation.var_level
        metrics = {
            key: {
                kind: performance_metrics(
                    series.loc[start:end], turnover=res.turnover, holdings=res.holdings, var_level=var_level
                )
                for kind, series in (("net", res.returns_net), ("gross", res.returns_gross))
            }
            for key, res in backtests.items()
        }
        net = pd.DataFrame({k: r.returns_net.loc[start:end] for k, r in backtests.items()})
        statistics = evaluate(
            net, variants, "market_cap", config.evaluation, trials, family=family, decisions=d.decisions
        )
        tests = statistics.tests
        # A forecast made at the close of t is scored in the quarter its trade goes into (t + 1);
        # accuracy against zero per coin and quarter, Diebold-Mariano and Pesaran-Timmermann
        # tests, residuals and decay in one place.
        evaluation = forecast_evaluation(forecasts)
    calibration = _calibration(net, family, config, progress, map_fn)

    coins = sorted(d.universe["coin_id"].unique())
    return StudyResult(
        config=config,
        data_hash=panel.data_hash(),
        panel_start=panel.dates[0],
        panel_end=panel.dates[-1],
        panel_coins=len(panel.coins),
        quality_events=panel.events,
        decided=d,
        forecasts=forecasts,
        backtests=backtests,
        variants=variants,
        metrics=metrics,
        tests=tests,
        forecast_accuracy=evaluation.accuracy,
        forecast_overall=evaluation.overall,
        coin_returns=panel.returns.loc[d.decision_dates[0] : end, coins],
        reconciliation=_reconciliation(panel, config),
        statistics=statistics,
        forecast_evaluation=evaluation,
        family=family,
        calibration=calibration,
        metrics_net_compare=compare,
    )


def _calibration(
    net: pd.DataFrame, family: PrimaryFamily, config: StudyConfig, progress: Progress, map_fn
) -> CalibrationResult | None:
    """The report's short calibration of the primary tests (None when off or not possible)."""
    cal = config.evaluation.calibration
    if not family.comparisons or not (cal.size_reps or cal.power_reps):
        return None
    settings = CalibrationSettings(
        size_reps=cal.size_reps,
        power_reps=cal.power_reps,
        gaps=cal.gaps,
        inner_reps=cal.inner_reps,
        alpha=config.evaluation.primary_level,
        spa_alpha=config.evaluation.spa_level,
        target=config.evaluation.alpha,
        block_size=config.evaluation.block_length,
        test_block_size=config.evaluation.block_length,
        seed=config.evaluation.seed,
    )
    total = 3 * cal.size_reps + len(settings.forms) * len(cal.gaps) * cal.power_reps
    with progress.stage("Calibrating the primary tests (size and power)", total=total) as bar:
        try:
            return calibrate(net, family, settings, map_fn=map_fn, on_replication=bar.advance)
        except DataValidationError:
            return None
