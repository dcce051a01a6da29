"""Alembic migrations of the store (run them with :func:`call_monitor.store.schema.upgrade`)."""
