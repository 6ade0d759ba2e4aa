"""The one schema definition (SQLAlchemy 2.x Core), shared by SQLite and PostgreSQL.

Databases are created and upgraded by the Alembic revisions in :mod:`kallos.data.migrations`;
this metadata is the model those revisions must reproduce (a test compares them). A change here
needs a new revision. ``kallos.features.store`` adds ``daily_technical_indicators`` to
:data:`metadata`. The trading ledger (``accounts``, ``cycles``, ``orders``, ``fills``,
``positions``, ``nav``; revision 0003) is written by :mod:`kallos.trading`.

Dates are stored as SQL ``DATE`` and mean UTC calendar days stamped at that day's close.
Money is USD (USDT for Binance), prices per coin, market caps and volumes in USD.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

metadata = MetaData()

coins = Table(
    "coins",
    metadata,
    Column("coin_id", String(64), primary_key=True),
    Column("symbol", String(32)),
    Column("name", String(200)),
    Column("category", String(64), nullable=False, doc="crypto, stablecoin, gold, tokenized_fund, ..."),
    Column("source", String(32), nullable=False),
)

daily_market_data = Table(
    "daily_market_data",
    metadata,
    Column("coin_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True, doc="UTC day whose close the row describes"),
    Column("source", String(32), primary_key=True, doc="coingecko, binance, ..."),
    Column("open", Float),
    Column("high", Float),
    Column("low", Float),
    Column("close", Float, nullable=False),
    Column("volume", Float, doc="24h traded value in USD (quote currency)"),
    Column("market_cap", Float, doc="USD, circulating supply"),
    Column(
        "ingested_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        doc="UTC time the row was written (set by the ingester; the server default covers old rows)",
    ),
)
Index("ix_daily_market_data_date", daily_market_data.c.date)
# Coverage and "last stored day per source and coin" (live ingestion) read by this prefix.
Index(
    "ix_daily_market_data_source_coin_date",
    daily_market_data.c.source,
    daily_market_data.c.coin_id,
    daily_market_data.c.date,
)

market_cap_snapshots = Table(
    "market_cap_snapshots",
    metadata,
    Column("snapshot_date", Date, primary_key=True, doc="UTC day whose close the snapshot describes"),
    Column("rank", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("market_cap", Float),
    Column("price", Float),
    Column("circulating_supply", Float),
    Column("volume_24h", Float),
    Column("source", String(32), nullable=False),
)

index_monthly_constituents = Table(
    "index_monthly_constituents",
    metadata,
    Column("index_id", String(64), primary_key=True, doc="e.g. mcap_top5_cap35"),
    Column("month", Date, primary_key=True, doc="first day of the month the weights are held"),
    Column("coin_id", String(64), primary_key=True),
    Column("selection_date", Date, nullable=False, doc="last day of the previous month"),
    Column("rank", Integer, nullable=False),
    Column("market_cap", Float, nullable=False),
    Column("weight", Float, nullable=False, doc="capped market-cap weight at selection"),
)

daily_index_coin_contributions = Table(
    "daily_index_coin_contributions",
    metadata,
    Column("index_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("coin_id", String(64), primary_key=True),
    Column("weight", Float, nullable=False, doc="start-of-day drifted weight"),
    Column("return", Float, nullable=False, doc="coin's daily simple return"),
    Column("contribution", Float, nullable=False, doc="weight x return"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("kallos_version", String(32), nullable=False),
    Column("config_hash", String(32), nullable=False),
    Column("data_hash", String(32), nullable=False),
    Column("config", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("output_dir", Text, nullable=False),
    Column("wall_seconds", Float, nullable=False),
)

portfolio_weights = Table(
    "portfolio_weights",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("strategy", String(64), primary_key=True),
    Column("objective", String(64), primary_key=True, doc="'none' for benchmarks"),
    Column("date", Date, primary_key=True, doc="decision date (close)"),
    Column("coin_id", String(64), primary_key=True),
    Column("weight", Float, nullable=False),
)

portfolio_daily_returns = Table(
    "portfolio_daily_returns",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("strategy", String(64), primary_key=True),
    Column("objective", String(64), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("return_gross", Float, nullable=False),
    Column("return_net", Float, nullable=False),
    Column("turnover", Float, nullable=False),
)

forecasts = Table(
    "forecasts",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("forecaster", String(64), primary_key=True),
    Column("coin_id", String(64), primary_key=True),
    Column("as_of", Date, primary_key=True, doc="decision date whose close the forecast uses"),
    Column("horizon", Integer, nullable=False),
    Column("forecast", Float, nullable=False, doc="forward log return over horizon"),
    Column("realised", Float, doc="the realised label, when known"),
    Column("fold_cutoff", Date, nullable=False),
)

data_quality_events = Table(
    "data_quality_events",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("event_id", Integer, primary_key=True),
    Column("rule", String(64), nullable=False),
    Column("coin_id", String(64), nullable=False),
    Column("start", Date),
    Column("end", Date),
    Column("n_rows", Integer, nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)

model_registry = Table(
    "model_registry",
    metadata,
    Column("model_id", String(64), primary_key=True, doc="content hash: artifact + config + data slice"),
    Column("model_type", String(32), nullable=False, doc="gru, lstm, gru_attention, ..."),
    Column("coin_id", String(64), nullable=False),
    Column("train_start", Date, nullable=False),
    Column("train_end", Date, nullable=False, doc="last label-complete day used for training"),
    Column("val_start", Date),
    Column("val_end", Date),
    Column("test_start", Date, nullable=False),
    Column("test_end", Date, nullable=False),
    Column("hyperparameters", JSON, nullable=False),
    Column("val_metrics", JSON, nullable=False, doc="e.g. rmse, directional_accuracy, loss"),
    Column("artifact_path", Text, nullable=False, doc="safetensors state_dict + JSON scaler/meta"),
    Column("artifact_hash", String(64), nullable=False, doc="sha256 of the saved artifact files"),
    Column("config_hash", String(64), nullable=False, doc="sha256 of the model-relevant config"),
    Column("data_hash", String(64), nullable=False, doc="sha256 of the training data slice"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_model_registry_lookup",
    model_registry.c.model_type,
    model_registry.c.coin_id,
    model_registry.c.config_hash,
    model_registry.c.data_hash,
)

# ---------------------------------------------------------------- store settings (revision 0004)
# Facts about this database every process using it must agree on, e.g. ``artifact_dir``: where
# the model registry's files live, whatever ``--out`` a run uses.

store_settings = Table(
    "store_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# ---------------------------------------------------------------- trading ledger (revision 0003)
# Quantities are in base units of the coin, prices and money in the account's quote currency
# (USDT); dates are decision closes. An account's cash is its position in the quote asset.

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(64), primary_key=True, doc="name, e.g. paper"),
    Column("uid", String(16), nullable=False, doc="random id in every client order id of the account"),
    Column("mode", String(16), nullable=False, doc="paper, sandbox or live"),
    Column("venue", String(32), nullable=False, doc="binance"),
    Column("quote", String(16), nullable=False, doc="quote asset, e.g. USDT"),
    Column("strategy", String(64), nullable=False, doc="variant key traded, e.g. gru/max_sharpe"),
    Column("first_period", Date, doc="first decision traded (the shadow backtest starts the day after)"),
    Column("initial_cash", Float, nullable=False),
    Column("config", JSON, nullable=False, doc="the study config (with [trading]) the account trades"),
    Column("config_hash", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

cycles = Table(
    "cycles",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("period", Date, primary_key=True, doc="decision close the cycle trades"),
    Column("run_id", String(64), nullable=False, doc="id of the decision (kept when the cycle is rerun)"),
    Column("status", String(16), nullable=False, doc="decided, done, held, refused or failed"),
    Column("guard", String(32), doc="the guard that refused the cycle, if one did"),
    Column("message", Text),
    Column("decision", JSON, doc="objective used, solver, fallback chain, universe, forecasts"),
    Column("nav", Float, doc="account value at the reference prices before trading"),
    Column("cost", Float, doc="planned cost as a fraction of nav (the backtest's c)"),
    Column("turnover", Float, doc="planned sum |traded notional| / nav"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

orders = Table(
    "orders",
    metadata,
    Column("client_order_id", String(40), primary_key=True, doc="derived from (account, period, coin)"),
    Column("account_id", String(64), nullable=False),
    Column("period", Date, nullable=False, doc="rebalance date (decision close) that caused the order"),
    Column("run_id", String(64), nullable=False, doc="the decision run (cycles.run_id)"),
    Column("coin_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False, doc="venue pair, e.g. BTC/USDT"),
    Column("side", String(4), nullable=False, doc="buy or sell"),
    Column("target_weight", Float, nullable=False, doc="the decision's weight of the coin"),
    Column("reference_price", Float, nullable=False, doc="price the backtest assumes (decision close)"),
    Column("ideal_quantity", Float, nullable=False, doc="quantity before exchange rounding"),
    Column("quantity", Float, nullable=False, doc="quantity sent (rounded to the lot step)"),
    Column("status", String(20), nullable=False, doc="planned, skipped, sent, open, filled, canceled, ..."),
    Column("reason", Text, doc="why skipped, rejected, cancelled or resized"),
    Column("venue_order_id", String(64)),
    Column("filled_quantity", Float, nullable=False),
    Column("average_price", Float),
    Column("fee_quote", Float, nullable=False, doc="fees paid, valued in the quote currency"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_orders_account_period", orders.c.account_id, orders.c.period)

fills = Table(
    "fills",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("fill_id", String(64), primary_key=True, doc="venue trade id (paper: <client order id>-1)"),
    Column("client_order_id", String(40), nullable=False),
    Column("coin_id", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Float, nullable=False, doc="base units traded"),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False, doc="in fee_asset"),
    Column("fee_asset", String(16), nullable=False),
    Column("fee_quote", Float, nullable=False, doc="the fee valued in the quote currency"),
    Column("traded_at", DateTime(timezone=True), nullable=False),
)
Index("ix_fills_client_order_id", fills.c.client_order_id)

positions = Table(
    "positions",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("asset", String(64), primary_key=True, doc="coin id, or the quote asset (upper case) for cash"),
    Column("quantity", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

nav = Table(
    "nav",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True, doc="decision close the account is marked at"),
    Column("nav", Float, nullable=False, doc="before the cycle's trades, at the reference prices"),
    Column("cash", Float, nullable=False),
    Column("interest", Float, nullable=False, doc="cash interest credited since the previous mark"),
    Column("nav_after", Float, doc="after the cycle's trades and fees, at the reference prices"),
    Column("fees", Float, doc="fees of the cycle's fills, quote currency"),
    Column("marked_at", DateTime(timezone=True), nullable=False),
)

TRADING_TABLES = (accounts, cycles, orders, fills, positions, nav)

RUN_TABLES = (portfolio_weights, portfolio_daily_returns, forecasts, data_quality_events)
