"""Predicted CLV: BG/NBD (Fader, Hardie & Lee 2005) for how many orders a customer
will place, Gamma-Gamma (Fader, Hardie & Lee 2005b) for what each will be worth, both
fitted by maximum likelihood on the tenant's own orders.

The models are in ``libs.buyer_models``. Customers are summarised as (repeat orders
``x``, time of the last order ``t_x``, age ``T``) in weeks since their first order.
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.buyer_models import (
    BgNbd,
    Buyer,
    GammaGamma,
    Prediction,
    fit_value_model,
)
from services.analytics.domain.figure import Answer

# A customer as the models see it (times in weeks, ``value``: mean net order); the same
# summary alerts weighs a churn risk's value with.
Summary = Buyer


def predict(
    customers: Sequence[Summary], horizon_weeks: float
) -> tuple[BgNbd, GammaGamma, list[Prediction]]:
    """Fit both models on ``customers`` and predict each one's next ``horizon_weeks``."""
    model = fit_value_model(customers)
    return model.orders, model.values, [model.predict(c, horizon_weeks) for c in customers]


def clv_answer(summaries: Sequence[Summary], horizon_weeks: float) -> Answer:
    """The predicted CLV figure: the mean over the customers, with the fitted models."""
    if len(summaries) < 3:
        return Answer(
            "predicted-clv",
            {"value": None, "customers": len(summaries), "horizon_weeks": horizon_weeks},
            "BG/NBD + Gamma-Gamma need the orders of at least three customers",
        )
    orders, values, predictions = predict(summaries, horizon_weeks)
    total = sum(p.clv for p in predictions)
    by_id = {s.customer_id: s for s in summaries}
    return Answer(
        "predicted-clv",
        {
            "value": round(total / len(predictions), 2),
            "customers": len(predictions),
            "horizon_weeks": horizon_weeks,
            "expected_orders": round(sum(p.expected_orders for p in predictions), 2),
            "models": {
                "bg_nbd": {"r": orders.r, "alpha": orders.alpha, "a": orders.a, "b": orders.b},
                "gamma_gamma": {"p": values.p, "q": values.q, "v": values.v},
            },
        },
        "predicted CLV over the horizon: orders expected from BG/NBD (Fader, Hardie & Lee "
        "2005) times the order value expected from Gamma-Gamma, both fitted by maximum "
        "likelihood on the tenant's own orders as of as_of (repeat orders, the last "
        "order's time and the age of each customer in weeks; net order values); "
        "undiscounted, minor units",
        customers=[
            {
                "customer_id": p.customer_id,
                "orders_so_far": by_id[p.customer_id].x + 1,
                "expected_orders": round(p.expected_orders, 4),
                "expected_order_value": round(p.expected_value, 2),
                "predicted_clv": round(p.clv, 2),
            }
            for p in sorted(predictions, key=lambda p: p.customer_id)
        ],
    )
