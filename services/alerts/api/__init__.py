"""The alerts HTTP API under /api/v1: churn risks ranked, one customer's risk, the rules.

The tenant comes from the token only; a customer this tenant does not know is a 404.
Reading risks needs ``customers:read``; changing the rules ``churn:configure``.
``as_of`` is a date (the end of that day, UTC) or a time; absent, now.

One router per concern; what they share is in ``conventions``.
"""

from libs.platform.routing import ServiceRouter
from services.alerts.api import churn_alerts, past_rankings, reminders, risks, rules, weekly_lists

# The operations in the order they were always declared: the OpenAPI document lists
# them so.
router = ServiceRouter(
    routes=[
        route
        for part in (risks, rules, past_rankings, weekly_lists, churn_alerts, reminders)
        for route in part.router.routes
    ]
)
