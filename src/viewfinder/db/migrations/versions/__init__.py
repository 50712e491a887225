"""Alembic revision scripts, applied in order by ``viewfinder.db.migrate.upgrade``."""
