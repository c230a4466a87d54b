"""The contacts HTTP API under /api/v1: one router per concern, the conventions every
endpoint keeps in ``conventions.py``."""

from fastapi import APIRouter

from services.contacts.api import (
    consents,
    custom_fields,
    customers,
    history,
    imports,
    interactions,
    merges,
    personal_data,
)

# In the order their routes were always declared, so that matching is unchanged:
# the routes of the one customers router before the split, in its order, then imports.
routers: list[APIRouter] = [
    customers.router,
    interactions.router,
    merges.router,
    consents.router,
    history.router,
    personal_data.router,
    custom_fields.router,
    imports.router,
]
