"""The contacts HTTP API under /api/v1: one router per concern (customers, imports)."""

from fastapi import APIRouter

from services.contacts.api import customers, imports

# In the order they were always included: customers first, as before the split.
routers: list[APIRouter] = [customers.router, imports.router]
