"""The origin's databases: SQLite (default) and PostgreSQL, both behind core's SqlExecutor seam."""
