"""Alembic revisions, one file per schema change, oldest first (0001, 0002, ...)."""
