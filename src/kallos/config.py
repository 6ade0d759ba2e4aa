"""Typed, frozen, strict study configuration.

A study is described by one :class:`StudyConfig`. It is loaded from TOML (or built in
Python), rejects unknown keys, validates values, and hashes to a short id that, with
the data hash, names a run.

Example TOML (every key is optional; omitted keys keep their defaults)::

    seed = 7
    [universe]
    top_n = 5
    [backtest]
    start = 2022-01-01
    end = 2024-12-31
    rebalance = "weekly"
    cost_bps = 10
    [portfolio]
    objectives = ["max_sharpe", "max_quadratic_utility"]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kallos.exceptions import ConfigError

__all__ = [
    "PRESETS",
    "SCHEDULER_ENV",
    "BacktestConfig",
    "BadWindow",
    "CalibrationConfig",
    "ComputeConfig",
    "EvaluationConfig",
    "ForecastConfig",
    "PortfolioConfig",
    "QualityConfig",
    "StudyConfig",
    "TradingConfig",
    "TrainingConfig",
    "TuningConfig",
    "UniverseConfig",
    "apply_overrides",
    "load_config",
    "preset_path",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BadWindow(_Strict):
    """A known-bad stretch of one coin's prices from one source, dropped with a reason."""

    coin_id: str
    source: str | None = Field(None, description="only rows from this source; None = every source")
    start: dt.date | None = None
    end: dt.date
    reason: str


class QualityConfig(_Strict):
    """Data-quality rules applied when the panel is built (see :mod:`kallos.data.quality`)."""

    exclude_categories: tuple[str, ...] = Field(
        ("stablecoin", "gold", "tokenized_fund", "wrapped", "liquid_staking"),
        description="categories kept out of risky universes (kallos.data.categories.CATEGORIES); "
        "wrapped and liquid-staking tokens would count their underlying coin twice",
    )
    max_ffill_days: int = Field(3, ge=0, le=30, description="longest gap filled forward, days")
    max_daily_return: float = Field(
        5.0,
        gt=0,
        description="cap on daily simple returns (+500%); the lower cap is the "
        "symmetric log move, 1/(1+cap)-1 (-83.3%)",
    )
    stale_run_days: int = Field(5, ge=2, description="identical closes in a row that count as stale")
    launch_artefact_days: int = Field(
        90, ge=0, description="a capped jump this early in a coin's history drops the rows before it"
    )
    known_bad_windows: tuple[BadWindow, ...] = ()


class UniverseConfig(_Strict):
    """Monthly point-in-time universe and the capped market-cap benchmark.

    ``method`` picks a key of :data:`kallos.data.universe.UNIVERSE_METHODS`:
    ``market_cap_daily`` (top-N by the panel's daily market cap) or ``cmc_snapshots``
    (true historical top-N from CoinMarketCap monthly snapshots, survivorship-free).
    """

    method: Literal["market_cap_daily", "cmc_snapshots"] = "market_cap_daily"
    top_n: int = Field(5, ge=1, le=200)
    benchmark_max_weight: float = Field(0.35, gt=0, le=1)
    min_history_days: int = Field(
        457,
        ge=30,
        description="clean daily prices a coin needs at selection: 365 days of model history "
        "plus one quarter, since a model can be up to a quarter old",
    )
    divergence_threshold: float = Field(
        0.02,
        ge=0,
        description="CoinGecko vs Binance close: a coin-month whose mean |cg/bn - 1| exceeds this "
        "is flagged in results.universe.reconciliation",
    )
    cmc_check: Literal["replace", "flag", "off"] = Field(
        "replace",
        description="cross-check every ranked coin's market cap against the CoinMarketCap snapshot of "
        "the month: 'replace' ranks a disagreeing coin by close x CMC circulating supply, 'flag' only "
        "reports it, 'off' skips the check",
    )
    cmc_max_disagreement: float = Field(
        0.5,
        gt=0,
        description="largest accepted disagreement max(a/b, b/a) - 1 between the panel's and CMC's "
        "market cap on the snapshot date",
    )


class TrainingConfig(_Strict):
    """Settings of the model-agnostic trainer (:mod:`kallos.forecast.training`), shared by every
    neural forecaster. A network's own sizes live in ``forecast.models.<name>`` (validated by the
    forecaster's registered spec, see :mod:`kallos.forecast.registry`)."""

    lookback: int = Field(30, ge=2, description="days of features per input sequence")
    direction_weight: float = Field(
        2.0, ge=1, description="lambda: squared-error weight when the predicted sign is wrong"
    )
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(5, ge=1, description="epochs without validation improvement before stopping")


class TuningConfig(_Strict):
    """Optuna hyper-parameter search inside one training window (see :mod:`kallos.forecast.tuning`).

    With ``enabled`` (``kallos run --tune``) every neural (forecaster, coin, fold) job of the
    walk-forward is tuned first, inside its training window, and served by its chosen trial
    (:mod:`kallos.forecast.tuned`). ``space`` narrows the search: ``{name: [low, high]}`` for a
    numeric parameter, ``{name: [choice, ...]}`` for a categorical one (e.g.
    ``space.hidden_size = [16, 64]``); names are the trainer's and the network's parameters.
    """

    enabled: bool = Field(False, description="tune every neural job of kallos run (kallos run --tune)")
    n_trials: int = Field(50, ge=1, description="trials per study (coin x fold x config)")
    space: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict,
        description="bounds replacing the default search space, e.g. space.hidden_size = [16, 64]",
    )
    pruning_startup_trials: int = Field(
        3, ge=1, description="completed trials needed before the median pruning rule applies"
    )
    pruning_fraction: float = Field(
        0.34, gt=0, lt=1, description="share of max_epochs after which the pruning rule is checked"
    )


class ForecastConfig(_Strict):
    """Label, walk-forward schedule and forecaster settings."""

    horizon: int = Field(7, ge=1, le=90, description="label: forward log return over this many days")
    train_start: dt.date = dt.date(2018, 6, 1)
    train_window_days: int | None = Field(
        None,
        ge=60,
        description="rolling training window: each fold trains on the last this many days before its "
        "cutoff (validation and purge gaps included); None = expanding from train_start",
    )
    validation_days: int = Field(91, ge=7, description="last 13 weeks of each training window")
    min_train_samples: int = Field(60, ge=10)
    forecasters: tuple[str, ...] = Field(
        ("gru", "lstm", "zero", "historical_mean", "naive_persistence"),
        description="registered forecaster names (kallos.forecast.registry.FORECASTERS), in report order",
    )
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-forecaster settings, e.g. models.gru.hidden_size = 64; each table is validated "
        "by that forecaster's spec (kallos.pipeline.validate.validate_study)",
    )
    training: TrainingConfig = TrainingConfig()
    refit: bool = Field(
        False,
        description="after early stopping picks the epoch count on the validation block, retrain on the "
        "whole window up to the cutoff (labels still purged) for that many epochs",
    )
    tuning: TuningConfig = TuningConfig()

    def settings_for(self, name: str) -> dict[str, Any]:
        """The raw ``models.<name>`` table (empty when not given)."""
        return dict(self.models.get(name, {}))


class PortfolioConfig(_Strict):
    """Mean-variance construction shared by every forecast-driven strategy."""

    objectives: tuple[str, ...] = ("max_sharpe", "max_quadratic_utility")
    max_weight: float = Field(0.35, gt=0, le=1)
    min_names: int = Field(3, ge=1)
    min_weight_held: float = Field(1e-4, ge=0, description="a weight below this counts as not held")
    risk_aversion: float = Field(1.0, gt=0, description="delta in max_quadratic_utility")
    l2_gamma: float = Field(1.0, ge=0, description="L2 penalty in max_return")
    risk_free_rate: float = Field(0.0, description="annualised simple; objectives use mu - rf")
    target_volatility: float | None = Field(None, gt=0, description="annual, for efficient_risk")
    target_return: float | None = Field(None, gt=0, description="annual simple, for efficient_return")
    cvar_beta: float = Field(
        0.95, gt=0, lt=1, description="confidence level of min_cvar (CVaR of the worst 1 - beta days)"
    )
    turnover_limit: float | None = Field(
        None, gt=0, le=2, description="max sum |w - w_drifted| per rebalance (one-way); None = off"
    )
    allow_cash: bool = Field(False, description="weights may sum below 1; the rest earns backtest.cash_rate")
    mip_time_limit: float = Field(
        10.0, gt=0, description="seconds per SCIP cardinality solve; at the limit the best found is used"
    )
    covariance: Literal["sample", "ledoit_wolf", "exponential"] = "sample"
    cov_lookback: int = Field(365, ge=30, description="trailing days of returns for the covariance")
    cov_halflife: float = Field(60.0, gt=0, description="days, for covariance: exponential")
    cov_return_cap: float | None = Field(
        None, gt=0, description="winsorise daily returns at [1/(1+cap)-1, cap] before estimation; None = off"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioConfig:
        if self.min_weight_held > self.max_weight:
            raise ValueError(
                f"portfolio.min_weight_held={self.min_weight_held} > portfolio.max_weight={self.max_weight}"
            )
        if self.min_weight_held * self.min_names > 1 + 1e-12:
            raise ValueError(
                f"portfolio.min_weight_held={self.min_weight_held} x "
                f"portfolio.min_names={self.min_names} > 1: the held names cannot fit"
            )
        needs = {"efficient_risk": "target_volatility", "efficient_return": "target_return"}
        for objective, key in needs.items():
            if objective in self.objectives and getattr(self, key) is None:
                raise ValueError(f"portfolio.objectives has {objective!r}: set portfolio.{key} (> 0)")
        return self


class BacktestConfig(_Strict):
    """Test period, rebalancing calendar and costs."""

    start: dt.date = dt.date(2022, 1, 1)
    end: dt.date = dt.date(2024, 12, 31)
    rebalance: Literal["weekly", "monthly"] = "weekly"
    rebalance_day: Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"] = Field(
        "SUN", description="weekday whose close is a weekly decision (month ends always are)"
    )
    cost_bps: float = Field(10.0, ge=0, description="per side, on traded notional")
    slippage_bps: float = Field(0.0, ge=0, description="per side, on traded notional, charged like cost_bps")
    cash_rate: float = Field(0.0, description="annual simple return of cash (portfolio.allow_cash)")
    compare_cost_bps: float | None = Field(
        None,
        ge=0,
        description="also report every variant's net metrics at this cost per side (e.g. 10 beside a "
        "pre-cost study with cost_bps = 0); None = off",
    )

    @model_validator(mode="after")
    def _ordered(self) -> BacktestConfig:
        if self.end <= self.start:
            raise ValueError(f"backtest.end ({self.end}) must be after backtest.start ({self.start})")
        return self


class CalibrationConfig(_Strict):
    """Size and power of the primary tests, simulated on the study's own returns for the report.

    ``kallos run`` runs a short calibration (the report's section); ``benchmarks/calibration.py``
    runs the full one (500 replications per null, five gaps). See
    :mod:`kallos.evaluation.calibration`.
    """

    size_reps: int = Field(100, ge=0, description="replications under each null (0 = no calibration)")
    power_reps: int = Field(100, ge=0, description="replications per planted (form, gap)")
    gaps: tuple[float, ...] = Field((2.0,), description="planted annual Sharpe gaps")
    inner_reps: int = Field(299, ge=99, description="bootstrap resamples of each test in a replication")


class EvaluationConfig(_Strict):
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level after correction")
    primary_level: float = Field(
        0.03,
        gt=0,
        lt=1,
        description="nominal level of the primary family's StepM (verdicts) and MCS. arch "
        "studentises with a fixed long-run variance, which on fat-tailed daily crypto returns "
        "over-rejects: at a nominal 5% the default study's measured false-positive rates were "
        "6.6-9.2%, and the nominal levels giving 5% were 2.9-3.7% (benchmarks/calibration.py); at "
        "3% they measured 4.6-5.8%. The report's calibration section measures each study's own",
    )
    spa_level: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="nominal level of the SPA tests; at its least favourable null SPA measured "
        "6.2-6.6% at 5% and 2.6-3.0% at 3% on the default study, so it keeps 5%",
    )
    power: float = Field(
        0.8, gt=0.5, lt=1, description="power at which the minimum detectable Sharpe gap is stated"
    )
    exploratory_correction: Literal["fdr_bh", "holm"] = Field(
        "fdr_bh", description="multiple-testing correction of the exploratory battery"
    )
    calibration: CalibrationConfig = CalibrationConfig()
    var_level: float = Field(0.95, gt=0.5, lt=1)
    bootstrap_reps: int = Field(
        1000, ge=100, le=100_000, description="bootstrap resamples of every bootstrap test"
    )
    block_length: int | None = Field(
        None, ge=1, description="bootstrap block length in days; None = Politis-White rule"
    )
    sd_orders: tuple[int, ...] = Field((1, 2), description="stochastic dominance orders tested (1 and/or 2)")
    pbo_splits: int = Field(16, ge=2, le=20, description="CSCV blocks for the probability of overfitting")
    regime_lookback: int = Field(90, ge=5, description="days of benchmark trend that define the regime")
    regime_bull: float = Field(0.15, gt=-1, description="trailing return above which a day is bull")
    regime_bear: float = Field(-0.15, gt=-1, description="trailing return below which a day is bear")
    seed: int = Field(0, ge=0, description="seed of the bootstrap resample indices")

    @model_validator(mode="after")
    def _statistics(self) -> EvaluationConfig:
        if self.pbo_splits % 2:
            raise ValueError(f"evaluation.pbo_splits must be even, got {self.pbo_splits}")
        if self.regime_bull <= self.regime_bear:
            raise ValueError(
                f"evaluation.regime_bull={self.regime_bull} must exceed regime_bear={self.regime_bear}"
            )
        bad = [o for o in self.sd_orders if o not in (1, 2)]
        if bad:
            raise ValueError(f"evaluation.sd_orders: unsupported {bad}; use 1 and/or 2")
        return self


_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class TradingConfig(_Strict):
    """The trading cycle (``kallos trade``): one variant of the study traded on an account.

    The cycle takes the study's decisions (universe, forecasts, optimiser, fallbacks, costs)
    for ``strategy`` at each decision close of the backtest calendar and trades them; see
    :mod:`kallos.trading`. Every limit refuses the cycle with a message naming its key.
    """

    strategy: str = Field(
        "gru/max_sharpe",
        description="variant key traded: <forecaster>/<objective>, market_cap or equal_weight",
    )
    account: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="account name in the store; None = the mode's name (paper, sandbox, live)",
    )
    venue: Literal["binance"] = "binance"
    quote: str = Field("USDT", pattern=r"^[A-Z0-9]{2,10}$", description="quote asset of the pairs (BTC/USDT)")
    initial_cash: float = Field(
        10_000.0,
        gt=0,
        description="quote a paper account starts with (sandbox, live: the capital allocated)",
    )
    max_order_notional: float = Field(25_000.0, gt=0, description="largest order, quote currency")
    max_turnover: float = Field(
        1.5, gt=0, le=2, description="largest sum |traded notional| / account value of one cycle (one-way)"
    )
    price_band: float = Field(
        0.05, gt=0, lt=1, description="refuse when a venue price is off the decision close by more than this"
    )
    stale_days: float = Field(2.0, gt=0, description="refuse when a close the cycle needs is older than this")
    kill_switch: str = Field(
        "KILL", description="file that stops every cycle while it exists (relative paths: under --out)"
    )
    ingest: tuple[Literal["binance", "coingecko"], ...] = Field(
        ("binance", "coingecko"), description="live sources whose missing days a cycle ingests first"
    )
    data_wait_minutes: float = Field(
        30.0, ge=0, description="how long a cycle waits for a source to publish the decision close"
    )
    check_days: int = Field(35, ge=7, description="days of fresh rows the data check looks at before trading")
    max_findings: dict[str, int] = Field(
        default_factory=lambda: {"return_cap": 0},
        description="data-check rule -> findings allowed in the checked window (see kallos data check)",
    )
    fill_timeout_s: float = Field(
        30.0, ge=0, description="seconds an accepted order may stay open before the rest is cancelled"
    )
    cycle_time: str = Field(
        "00:30", pattern=_HHMM, description="UTC time of day the cycle runs after a decision close"
    )
    execute_time: str | None = Field(
        None,
        pattern=_HHMM,
        description="UTC time the orders go out when deciding and trading are split (None = right away)",
    )

    def mode_account(self, mode: str) -> str:
        """The account traded in ``mode``: ``account`` if set, else the mode's name."""
        return self.account or mode

    @model_validator(mode="after")
    def _times(self) -> TradingConfig:
        if self.execute_time is not None and self.execute_time <= self.cycle_time:
            raise ValueError(
                f"trading.execute_time={self.execute_time} must be later than "
                f"trading.cycle_time={self.cycle_time}"
            )
        return self


SCHEDULER_ENV = "KALLOS_DASK_SCHEDULER"


class ComputeConfig(_Strict):
    """Where training and tuning jobs run (:mod:`kallos.compute`). Never changes a result.

    ``scheduler``: ``"local"`` starts a Dask ``LocalCluster`` with ``n_jobs`` single-threaded
    worker processes; ``"tcp://HOST:8786"`` submits to a running ``dask scheduler``; ``"none"``
    runs every job in this process. ``$KALLOS_DASK_SCHEDULER`` replaces the default ``"local"``.
    """

    scheduler: str = Field(
        "local",
        pattern=r"^(local|none|tcp://[^\s]+)$",
        description="local (LocalCluster), none (in-process) or tcp://HOST:PORT of a dask scheduler",
    )
    artifact_dir: str | None = Field(
        None,
        description="directory every worker can reach for model files; None = the one recorded in the "
        "store, else <out>/models",
    )


ReportAssets = Literal["inline", "shared"]
REPORT_ASSETS: tuple[str, ...] = get_args(ReportAssets)
"""How report.html gets plotly.js: embedded in the file, or from ``plotly.min.js`` beside it."""


class ReportConfig(_Strict):
    """How the HTML report is written (:mod:`kallos.report.html`). Never changes a result.

    ``assets``: ``"inline"`` embeds the plotly.js bundle in ``report.html`` (one file that works
    offline anywhere); ``"shared"`` writes ``plotly.min.js`` beside it and loads it through a
    relative ``<script src>`` (a smaller report; keep the two files together).
    """

    assets: ReportAssets = Field(
        "inline",
        description="inline (plotly.js embedded in report.html) or shared (plotly.min.js beside it)",
    )


class StudyConfig(_Strict):
    """The whole study. Defaults are the study described in the README."""

    preset: str | None = Field(
        None, description="the shipped preset this study follows (set by its TOML, e.g. 'original')"
    )
    seed: int = 42
    device: str = Field("cpu", description="torch device for the recurrent model")
    n_jobs: int = Field(2, ge=1, description="worker processes of the local Dask cluster (compute.scheduler)")
    quality: QualityConfig = QualityConfig()
    universe: UniverseConfig = UniverseConfig()
    forecast: ForecastConfig = ForecastConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    backtest: BacktestConfig = BacktestConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    trading: TradingConfig = TradingConfig()
    compute: ComputeConfig = ComputeConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _feasible(self) -> StudyConfig:
        p, u = self.portfolio, self.universe
        if p.max_weight * u.top_n < 1 - 1e-12:
            raise ValueError(
                f"portfolio.max_weight={p.max_weight} x universe.top_n={u.top_n} < 1: "
                "no fully invested portfolio fits; raise max_weight or top_n"
            )
        if p.min_names > u.top_n:
            raise ValueError(
                f"portfolio.min_names={p.min_names} > universe.top_n={u.top_n}: "
                "the universe cannot hold that many names"
            )
        if u.benchmark_max_weight * u.top_n < 1 - 1e-12:
            raise ValueError(f"universe.benchmark_max_weight={u.benchmark_max_weight} x top_n={u.top_n} < 1")
        if self.forecast.train_start >= self.backtest.start:
            raise ValueError("forecast.train_start must precede backtest.start")
        return self

    @property
    def implied_min_names(self) -> int:
        """Names any fully invested portfolio must hold under ``max_weight``."""
        return math.ceil(1 / self.portfolio.max_weight - 1e-12)

    def config_hash(self) -> str:
        """Short, stable hash of every setting of the study (12 hex characters).

        The ``[trading]``, ``[compute]`` and ``[report]`` sections are left out: they change how a
        strategy is traded, where jobs run and how the report is written, not what the study
        computes.
        """
        settings = self.model_dump(mode="json", exclude={"trading", "compute", "report"})
        blob = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _format_validation_error(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `kallos run --help`)"
        elif e["type"] == "value_error":  # our cross-field checks name their keys themselves
            msg = str(e.get("ctx", {}).get("error", msg.removeprefix("Value error, ")))
            key = "" if msg.startswith(f"{key}.") else key
        lines.append(f"  {key}: {msg}" if key else f"  {msg}")
    return f"invalid configuration in {origin}:\n" + "\n".join(lines)


def build_config(data: dict[str, Any], origin: str = "<config>") -> StudyConfig:
    """Validate a nested mapping into a :class:`StudyConfig`.

    Raises
    ------
    ConfigError
        Naming ``origin`` and every offending dotted key.
    """
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, origin)) from None


#: Studies shipped with Kallos (``kallos run --preset NAME``): name -> TOML in ``kallos/presets``.
PRESETS = ("original",)


def preset_path(name: str) -> Path:
    """The TOML file of the shipped preset ``name``.

    Raises
    ------
    ConfigError
        For an unknown preset (the message lists them).
    """
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: unknown; shipped presets: {', '.join(PRESETS)}")
    return Path(__file__).with_name("presets") / f"{name}.toml"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Load a TOML study file (or the defaults) and apply dotted-key overrides.

    Parameters
    ----------
    path : path to a TOML file, or None for the default study.
    overrides : mapping of dotted keys (``"backtest.cost_bps"``) to values.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, not UTF-8 or not valid TOML, or a key is unknown or invalid.
    """
    data: dict[str, Any] = {}
    origin = "<defaults>"
    if path is not None:
        origin = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as err:
            line = p.read_bytes()[: err.start].count(b"\n") + 1
            raise ConfigError(
                f"{p}, line {line}: not UTF-8 text; save the file as UTF-8 (TOML requires it)"
            ) from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{p}: not valid TOML: {err}") from None
        except OSError as err:
            raise ConfigError(f"config file {p} cannot be read: {err.strerror or err}") from None
    if overrides:
        data = apply_overrides(data, overrides)
        origin += " (with command-line overrides)"
    return build_config(data, origin)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of nested ``data`` with dotted-key ``overrides`` set.

    Raises
    ------
    ConfigError
        If a dotted key walks through a non-table value, given or known to the schema as a
        value (``backtest.cost_bps.x``).
    """
    out = json.loads(json.dumps(data, default=str))
    for dotted, value in overrides.items():
        node = out
        model: type[BaseModel] | None = StudyConfig
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            # A key the schema knows as a value (not a section) cannot hold sub-keys, even if unset.
            field = model.model_fields.get(part) if model is not None else None
            section = field.annotation if field is not None else None
            is_section = isinstance(section, type) and issubclass(section, BaseModel)
            is_table = is_section or get_origin(section) is dict  # e.g. forecast.models.<name>
            if field is not None and not is_table:
                raise ConfigError(
                    f"override {dotted!r}: {'.'.join(parts[: i + 1])} is a value, not a table; "
                    f"set it directly (--set {'.'.join(parts[: i + 1])}=...)"
                )
            model = section if is_section else None
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a table")
            node = nxt
        node[parts[-1]] = value
    return out
