"""The trading ledger: accounts, cycles, orders (with client order ids), fills, positions and nav.

Written by :mod:`kallos.trading`. Every order row records the decision that caused it (run id,
rebalance date, target weight); ``fills`` are keyed by the venue's trade id, so a fill recorded
twice (a rerun after a crash) is one row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _stamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("uid", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("venue", sa.String(length=32), nullable=False),
        sa.Column("quote", sa.String(length=16), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("first_period", sa.Date(), nullable=True),
        sa.Column("initial_cash", sa.Float(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "cycles",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("guard", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("nav", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("turnover", sa.Float(), nullable=True),
        _stamp("started_at"),
        _stamp("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("account_id", "period"),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("target_weight", sa.Float(), nullable=False),
        sa.Column("reference_price", sa.Float(), nullable=False),
        sa.Column("ideal_quantity", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("venue_order_id", sa.String(length=64), nullable=True),
        sa.Column("filled_quantity", sa.Float(), nullable=False),
        sa.Column("average_price", sa.Float(), nullable=True),
        sa.Column("fee_quote", sa.Float(), nullable=False),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    op.create_index("ix_orders_account_period", "orders", ["account_id", "period"])
    op.create_table(
        "fills",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("fill_id", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=40), nullable=False),
        sa.Column("coin_id", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("fee_asset", sa.String(length=16), nullable=False),
        sa.Column("fee_quote", sa.Float(), nullable=False),
        _stamp("traded_at"),
        sa.PrimaryKeyConstraint("account_id", "fill_id"),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_table(
        "positions",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("account_id", "asset"),
    )
    op.create_table(
        "nav",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("nav", sa.Float(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("interest", sa.Float(), nullable=False),
        sa.Column("nav_after", sa.Float(), nullable=True),
        sa.Column("fees", sa.Float(), nullable=True),
        _stamp("marked_at"),
        sa.PrimaryKeyConstraint("account_id", "date"),
    )


def downgrade() -> None:
    op.drop_table("nav")
    op.drop_table("positions")
    op.drop_index("ix_fills_client_order_id", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_orders_account_period", table_name="orders")
    op.drop_table("orders")
    op.drop_table("cycles")
    op.drop_table("accounts")
