"""Test support: pytest fixtures for real PostgreSQL and the real broker.

Outside ``libs/`` and ``services/`` on purpose: it imports pytest, and nothing in it
belongs in what the platform ships (pyproject's package list leaves it out).
"""
