"""The landed schema (git commit 1d432a0): market data, index tables and run outputs.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coins",
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("coin_id"),
    )
    op.create_table(
        "daily_index_coin_contributions",
        sa.Column("index_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("return", sa.Float(), nullable=False),
        sa.Column("contribution", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("index_id", "date", "coin_id"),
    )
    op.create_table(
        "daily_market_data",
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("open", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("market_cap", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "date", "source"),
    )
    op.create_index("ix_daily_market_data_date", "daily_market_data", ["date"], unique=False)
    op.create_table(
        "data_quality_events",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.Date(), nullable=True),
        sa.Column("end", sa.Date(), nullable=True),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "event_id"),
    )
    op.create_table(
        "forecasts",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("forecaster", sa.String(length=64), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("forecast", sa.Float(), nullable=False),
        sa.Column("realised", sa.Float(), nullable=True),
        sa.Column("fold_cutoff", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "forecaster", "coin_id", "as_of"),
    )
    op.create_table(
        "index_monthly_constituents",
        sa.Column("index_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("selection_date", sa.Date(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("market_cap", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("index_id", "month", "coin_id"),
    )
    op.create_table(
        "market_cap_snapshots",
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("market_cap", sa.Float(), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("circulating_supply", sa.Float(), nullable=True),
        sa.Column("volume_24h", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_date", "rank"),
    )
    op.create_table(
        "portfolio_daily_returns",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("objective", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("return_gross", sa.Float(), nullable=False),
        sa.Column("return_net", sa.Float(), nullable=False),
        sa.Column("turnover", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "strategy", "objective", "date"),
    )
    op.create_table(
        "portfolio_weights",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("objective", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "strategy", "objective", "date", "coin_id"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kallos_version", sa.String(length=32), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column("data_hash", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("output_dir", sa.Text(), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_index("ix_daily_market_data_date", table_name="daily_market_data")
    op.drop_table("runs")
    op.drop_table("portfolio_weights")
    op.drop_table("portfolio_daily_returns")
    op.drop_table("market_cap_snapshots")
    op.drop_table("index_monthly_constituents")
    op.drop_table("forecasts")
    op.drop_table("data_quality_events")
    op.drop_table("daily_market_data")
    op.drop_table("daily_index_coin_contributions")
    op.drop_table("coins")
