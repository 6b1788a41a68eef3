"""Alembic migrations of the store's schema (applied by ``Store`` on start)."""
