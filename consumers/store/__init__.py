"""The store: SQLAlchemy over SQLite (default) or PostgreSQL, with versioned migrations."""

from consumers.store.db import make_engine, migrate, schema_version

__all__ = ["make_engine", "migrate", "schema_version"]
