"""What a customer at risk is worth (decision 0101): the probability that it buys nothing
in the next ``HORIZON_DAYS``, its predicted value, and their product, the revenue at risk.

The probability is the lapse model's: the share of the tenant's customers with a like
lapse index who then bought nothing, measured on its own past and made monotone
(``cadence.calibrate``). The predicted value is analytics' predicted CLV over
``VALUE_HORIZON_DAYS`` (``libs.buyer_models``: BG/NBD's orders times Gamma-Gamma's
value per order, on the same summary: orders not cancelled, net of refunds). Fitted on
the tenant's buyers as of the time; beyond ``VALUE_FIT_SAMPLE`` buyers on a sample of
them, whose parameters settle long before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from libs.buyer_models import Buyer, ValueModel, buyer_of, fit_value_model
from services.alerts.domain.cadence import LapseModel, buying
from services.alerts.domain.facts import CustomerFacts, FactKind

# Analytics' predicted-CLV horizon by default: a year of the customer's orders.
VALUE_HORIZON_DAYS = 365
VALUE_FIT_SAMPLE = 4_000
# Analytics' floor too: fewer buyers than this fit no model.
MIN_BUYERS = 3

@dataclass(frozen=True, slots=True)
class Purchases:
    """A customer's orders by a time (cancelled ones left out): when each was placed,
    in time order, and their net value (refunds taken off), in minor units."""

    times: list[datetime]
    net: float


@dataclass(frozen=True, slots=True)
class Worth:
    # The probability of no purchase in the next HORIZON_DAYS (None: never bought, or
    # the tenant's past too short to measure it).
    no_purchase_probability: float | None = None
    # Predicted CLV over VALUE_HORIZON_DAYS, minor units (None: never bought, or no
    # model: fewer than MIN_BUYERS buyers).
    predicted_value: int | None = None
    revenue_at_risk: int | None = None


def purchases_of(folded: CustomerFacts) -> Purchases:
    """A customer's purchases from its facts as of a time."""
    counted = {o.order_id for o in folded.orders}
    refunded = sum(f.value for f in folded.of(FactKind.REFUND) if f.ref in counted)
    net = sum(o.total for o in folded.orders) - refunded
    return Purchases([o.placed_at for o in folded.orders], net)


def _buyer(customer_id: str, p: Purchases, when: datetime) -> Buyer | None:
    if not p.times:
        return None
    return buyer_of(customer_id, p.times[0], p.times[-1], len(p.times), p.net, when)


def fit_value(purchases: Mapping[str, Purchases], when: datetime) -> ValueModel | None:
    """The tenant's value model from its buyers as of ``when`` (None: too few)."""
    buyers = [
        b for b in (_buyer(c, p, when) for c, p in sorted(purchases.items())) if b is not None
    ]
    if len(buyers) < MIN_BUYERS:
        return None
    step = max(1, len(buyers) // VALUE_FIT_SAMPLE)
    try:
        return fit_value_model(buyers[::step])
    except (ValueError, OverflowError, ZeroDivisionError):
        return None  # a degenerate history: no value, the score still ranks


def worth(
    customer_id: str, folded: CustomerFacts, lapse: LapseModel, value: ValueModel | None
) -> Worth:
    """The customer's worth as of its facts' time."""
    p = purchases_of(folded)
    b = buying(p.times, folded.as_of)
    probability = lapse.probability(b) if b is not None else None
    buyer = _buyer(customer_id, p, folded.as_of)
    if buyer is None or value is None:
        return Worth(probability)
    predicted = round(value.predict(buyer, VALUE_HORIZON_DAYS / 7).clv)
    at_risk = round(probability * predicted) if probability is not None else None
    return Worth(probability, predicted, at_risk)
