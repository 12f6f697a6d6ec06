"""Fixtures of the contract suites: the database fixtures (``db_url``, ``engine``,
``sessions``) and the session's servers come from ``tests/conftest.py``."""
