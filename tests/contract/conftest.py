"""Fixtures of the contract suites. The session's PostgreSQL server (``postgres_server``)
comes from ``tests/conftest.py``."""
