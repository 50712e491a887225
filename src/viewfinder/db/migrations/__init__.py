"""Alembic migrations, shipped in the package so an installed viewfinder can migrate."""
