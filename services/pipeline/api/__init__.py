"""The pipeline HTTP API under /api/v1: one router per concern, the conventions every
endpoint keeps in ``conventions.py``."""

from fastapi import APIRouter

from services.pipeline.api import deals, leads, orders, tasks_and_contracts

# In the order they were always included: orders first, as before the split.
routers: list[APIRouter] = [orders.router, deals.router, leads.router, tasks_and_contracts.router]
