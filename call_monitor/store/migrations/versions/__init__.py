"""Alembic revisions of the store schema (Alembic itself skips this file)."""
