"""Alembic environment and revisions: the only way nightcast's schema changes."""
