"""Alembic migrations for doppel's database. Applied at start-up and by `doppel db upgrade`."""
