"""Alembic environment and versions for the boundary schema (see api/db/migrate.py)."""
