"""ingested_at on market data, the model registry, the technical-indicator table and query indexes.

``daily_market_data.ingested_at`` gets the server default ``now()`` so rows written before
this revision get the migration time. On SQLite the column is added by rebuilding the table
(Alembic batch mode): SQLite's ``ALTER TABLE ADD COLUMN`` refuses a non-constant default.

The indicator columns are frozen here (a migration never imports application code); the
drift test in ``tests/data/test_migrations.py`` checks they still equal
``kallos.features.FEATURE_NAMES``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDICATOR_COLUMNS = (
    "logret_1",
    "logret_3",
    "logret_7",
    "logret_14",
    "logret_30",
    "rsi_7",
    "rsi_14",
    "stoch_k",
    "stoch_d",
    "willr_14",
    "cci_20",
    "cmo_14",
    "ultosc",
    "roc_10",
    "roc_20",
    "roc_60",
    "ppo",
    "macd",
    "macd_signal",
    "macd_hist",
    "trix_15",
    "bop",
    "clv",
    "close_sma_10",
    "close_sma_20",
    "close_sma_50",
    "close_ema_26",
    "sma_10_50",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "aroonosc_14",
    "linreg_slope_14",
    "natr_14",
    "bb_pctb_20",
    "bb_width_20",
    "rvol_7",
    "rvol_30",
    "hl_range",
    "parkinson_14",
    "volume_log_ratio_30",
    "volume_log_ratio_7_30",
    "obv_change_10",
    "adosc_3_10",
    "mfi_14",
)


def _batch_recreate() -> str:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("daily_market_data", recreate=_batch_recreate()) as batch:
        batch.add_column(
            sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)
        )
    op.create_index(
        "ix_daily_market_data_source_coin_date", "daily_market_data", ["source", "coin_id", "date"]
    )
    op.create_table(
        "model_registry",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("model_type", sa.String(length=32), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("train_start", sa.Date(), nullable=False),
        sa.Column("train_end", sa.Date(), nullable=False),
        sa.Column("val_start", sa.Date(), nullable=True),
        sa.Column("val_end", sa.Date(), nullable=True),
        sa.Column("test_start", sa.Date(), nullable=False),
        sa.Column("test_end", sa.Date(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("val_metrics", sa.JSON(), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("artifact_hash", sa.String(length=64), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("data_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id"),
    )
    op.create_index(
        "ix_model_registry_lookup", "model_registry", ["model_type", "coin_id", "config_hash", "data_hash"]
    )
    op.create_table(
        "daily_technical_indicators",
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in INDICATOR_COLUMNS),
        sa.PrimaryKeyConstraint("coin_id", "date"),
    )
    op.create_index("ix_daily_technical_indicators_date", "daily_technical_indicators", ["date"])


def downgrade() -> None:
    op.drop_index("ix_daily_technical_indicators_date", table_name="daily_technical_indicators")
    op.drop_table("daily_technical_indicators")
    op.drop_index("ix_model_registry_lookup", table_name="model_registry")
    op.drop_table("model_registry")
    op.drop_index("ix_daily_market_data_source_coin_date", table_name="daily_market_data")
    with op.batch_alter_table("daily_market_data", recreate=_batch_recreate()) as batch:
        batch.drop_column("ingested_at")
