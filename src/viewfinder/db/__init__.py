"""Metadata in SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL by URL, the same migrations."""
