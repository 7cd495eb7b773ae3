"""The platform tests' fixture: a seeded park (tests/portal/park.py) on SQLite and on PostgreSQL."""

from tests.portal.park import park

__all__ = ["park"]
