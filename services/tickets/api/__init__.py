"""The tickets HTTP API under /api/v1: one router per concern; the conventions every
endpoint keeps are in ``tickets.py``."""

from fastapi import APIRouter

from services.tickets.api import policies, surveys, tickets

# In the order they were always included: tickets first, as before the split.
routers: list[APIRouter] = [tickets.router, policies.router, surveys.router]
