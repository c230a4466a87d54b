"""The churn signals: each reads a customer's facts as of a time and, when it fires,
says how strongly (0-1), why in a sentence, and which events are behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.buyer_models import ValueModel
from libs.events.catalog.alerts import Signal, SignalRule
from services.alerts.domain.cadence import HORIZON_DAYS, LIKELY, LapseModel, buying, calibrate
from services.alerts.domain.facts import CustomerFacts, Fact, FactKind, typical_repeat_of
from services.alerts.domain.value import Purchases, fit_value, purchases_of

Figures = Mapping[str, int | float | str | None]


@dataclass(frozen=True, slots=True)
class Finding:
    strength: float  # 0-1: how far past the threshold
    sentence: str
    event_ids: tuple[str, ...]
    # What the sentence states, as numbers (a reader words them in its language).
    figures: Figures = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """What a signal needs beside the customer: the tenant's typical repeat interval."""

    typical_repeat_days: float | None = None
    # How likely a buyer like this one has lapsed, learnt from the tenant's history.
    lapse: LapseModel = field(default_factory=LapseModel)
    # What a buyer is predicted to be worth (None: too few buyers to fit it).
    value: ValueModel | None = None



Evaluator = Callable[[CustomerFacts, SignalRule, Context], Finding | None]


def tenant_context(
    customers: Sequence[CustomerFacts], when: datetime, typical_repeat: float | None = None
) -> Context:
    """What the tenant's customers as of ``when`` tell about each one: the typical
    repeat interval (unless the rules set it), the lapse model learnt from them and
    what a buyer is worth."""
    purchases = {str(i): purchases_of(c) for i, c in enumerate(customers)}
    return tenant_context_of(purchases, when, typical_repeat)


def tenant_context_of(
    purchases: Mapping[str, Purchases], when: datetime, typical_repeat: float | None = None
) -> Context:
    """The same from each customer's orders by ``when`` (cancelled ones left out)."""
    histories = [p.times for p in purchases.values()]
    typical = typical_repeat if typical_repeat is not None else typical_repeat_of(histories)
    return Context(typical, calibrate(histories, when), fit_value(purchases, when))


def _between(facts: Sequence[Fact], start: datetime, end: datetime) -> list[Fact]:
    return [f for f in facts if start < f.at <= end]


def _newest_first(facts: Sequence[Fact]) -> tuple[str, ...]:
    return tuple(f.event_id for f in sorted(facts, key=lambda f: f.at, reverse=True))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def order_frequency_drop(c: CustomerFacts, rule: SignalRule, ctx: Context) -> Finding | None:
    window = timedelta(days=rule.window_days)
    recent = [o for o in c.orders if c.as_of - window < o.placed_at <= c.as_of]
    # The customer's own rate over up to three windows before this one.
    before = [o for o in c.orders if c.as_of - 4 * window < o.placed_at <= c.as_of - window]
    # Bought nothing at all in the window: the customer stopped rather than slowed,
    # which order_overdue weighs (counted twice, a stopped repeat buyer would outrank a
    # stopped one-time buyer, who lapses more often).
    if len(before) < 2 or not recent:
        return None
    spanned = min(3 * window, c.as_of - window - before[0].placed_at)
    expected = len(before) * (window / max(spanned, window))
    drop = 1 - len(recent) / expected
    if drop < rule.threshold:
        return None
    sentence = (
        f"Bought {_times(len(recent)) if recent else 'nothing'} in the last "
        f"{rule.window_days} days, against about {expected:.1f} expected from the "
        f"{len(before)} orders before."
    )
    behind = recent[::-1] + before[::-1][:3]
    # Weighed by how often such a buyer then stopped, as the tenant's history measured
    # it: a slowing buyer who still bought lately is less at risk than one who stopped,
    # and a repeat buyer's drop must not rank it above a one-time buyer gone as long.
    measured = _lapse_probability(c, ctx)
    strength = min(1.0, drop) * (measured if measured is not None else 1.0)
    figures = {
        "recent": len(recent),
        "window_days": rule.window_days,
        "expected": round(expected, 1),
        "before": len(before),
    }
    return Finding(strength, sentence, tuple(o.event_id for o in behind), figures)


def _lapse_probability(c: CustomerFacts, ctx: Context) -> float | None:
    b = buying([o.placed_at for o in c.orders], c.as_of)
    return ctx.lapse.probability(b) if b is not None else None


def order_overdue(c: CustomerFacts, rule: SignalRule, ctx: Context) -> Finding | None:
    last = c.last_order
    if last is None:
        return None
    days = (c.as_of - last.placed_at).total_seconds() / 86400
    own = c.cadence_days()
    cadence = own if own is not None else ctx.typical_repeat_days
    ratio = days / cadence if cadence is not None else None
    past_rhythm = ratio is not None and ratio >= rule.threshold
    # Strength: the share of the tenant's customers buying like this one who then
    # bought nothing for HORIZON_DAYS, as its own history measured it. Where it is
    # measured, it fires when such customers more often than not stopped; and past the
    # customer's rhythm only if that ranked the tenant's past better (the rhythm gate:
    # on CDNOW it cost 0.001-0.003 AUC, on buyers of fixed rhythms it gained 0.04;
    # decision 0101). Without enough history: past the threshold, half strength there
    # and full at twice it, within the window.
    measured = _lapse_probability(c, ctx)
    if measured is not None:
        if measured < LIKELY and not (ctx.lapse.rhythm_gate and past_rhythm):
            return None
        strength = measured
    elif past_rhythm and days <= rule.window_days and ratio is not None:
        strength = (
            min(1.0, 0.5 + 0.5 * (ratio - rule.threshold) / rule.threshold)
            if rule.threshold
            else 1.0
        )
    else:
        return None
    if cadence is None:
        sentence = f"No order for {days:.0f} days."
    elif own is not None:
        sentence = (
            f"No order for {days:.0f} days; this customer usually buys every {cadence:.0f} days."
        )
    else:
        sentence = (
            f"No order for {days:.0f} days: bought once; customers usually return "
            f"within {cadence:.0f} days."
        )
    if measured is not None:
        sentence += (
            f" Of customers buying like this, {measured:.0%} bought nothing in the "
            f"following {HORIZON_DAYS} days."
        )
    figures = {
        "days": round(days),
        "cadence_days": round(cadence) if cadence is not None else None,
        "own_cadence": "yes" if own is not None else "no",
        "lapsed_share": round(measured, 2) if measured is not None else None,
        "horizon_days": HORIZON_DAYS,
    }
    return Finding(strength, sentence, (last.event_id,), figures)


def _rising(
    c: CustomerFacts, rule: SignalRule, kinds: tuple[FactKind, ...]
) -> tuple[list[Fact], list[Fact]] | None:
    window = timedelta(days=rule.window_days)
    facts = [f for k in kinds for f in c.of(k)]
    recent = _between(facts, c.as_of - window, c.as_of)
    before = _between(facts, c.as_of - 2 * window, c.as_of - window)
    if len(recent) < max(rule.threshold, 1) or len(recent) <= len(before):
        return None
    return recent, before


def complaints_increase(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    found = _rising(c, rule, (FactKind.COMPLAINT, FactKind.SLA_BREACH))
    if found is None:
        return None
    recent, before = found
    complaints = sum(1 for f in recent if f.kind is FactKind.COMPLAINT)
    breaches = len(recent) - complaints
    parts = [f"{complaints} complaint{'s' if complaints != 1 else ''}"] if complaints else []
    if breaches:
        parts.append(f"{breaches} missed service target{'s' if breaches != 1 else ''}")
    sentence = (
        f"{' and '.join(parts).capitalize()} in the last {rule.window_days} days, "
        f"against {len(before)} in the {rule.window_days} days before."
    )
    strength = min(1.0, len(recent) / (2 * max(rule.threshold, 1)) + 0.5)
    figures = {
        "complaints": complaints,
        "breaches": breaches,
        "window_days": rule.window_days,
        "before": len(before),
    }
    return Finding(strength, sentence, _newest_first(recent), figures)


def interactions_fall(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    window = timedelta(days=rule.window_days)
    facts = c.of(FactKind.INTERACTION)
    recent = _between(facts, c.as_of - window, c.as_of)
    before = _between(facts, c.as_of - 2 * window, c.as_of - window)
    if len(before) < 2:
        return None
    drop = 1 - len(recent) / len(before)
    if drop < rule.threshold:
        return None
    sentence = (
        f"{len(recent)} interaction{'s' if len(recent) != 1 else ''} in the last "
        f"{rule.window_days} days, down from {len(before)} in the {rule.window_days} days before."
    )
    figures = {"recent": len(recent), "window_days": rule.window_days, "before": len(before)}
    return Finding(min(1.0, drop), sentence, _newest_first(recent + before[-3:]), figures)


def key_contact_changed(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    window = timedelta(days=rule.window_days)
    changes = _between(c.of(FactKind.KEY_CONTACT_CHANGED), c.as_of - window, c.as_of)
    if not changes or len(changes) < rule.threshold:
        return None
    roles = ", ".join(dict.fromkeys(f.ref for f in changes))
    newest = max(f.at for f in changes)
    days = (c.as_of - newest).days
    sentence = (
        f"The key contact changed ({roles}) {days} day{'s' if days != 1 else ''} ago: "
        "the relationship has to be rebuilt."
    )
    return Finding(1.0, sentence, _newest_first(changes), {"roles": roles, "days": days})


def refunds_rising(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    found = _rising(c, rule, (FactKind.REFUND,))
    if found is None:
        return None
    recent, before = found
    sentence = (
        f"{len(recent)} refunds in the last {rule.window_days} days, "
        f"against {len(before)} in the {rule.window_days} days before."
    )
    return Finding(
        min(1.0, len(recent) / (2 * max(rule.threshold, 1)) + 0.5),
        sentence,
        _newest_first(recent),
        {"recent": len(recent), "window_days": rule.window_days, "before": len(before)},
    )


def nps_detractor(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    window = timedelta(days=rule.window_days)
    answers = _between(c.of(FactKind.NPS), c.as_of - window, c.as_of)
    if not answers:
        return None
    latest = max(answers, key=lambda f: f.at)
    if latest.value > rule.threshold:
        return None
    score = int(latest.value)
    sentence = f"Answered {score} out of 10 to 'would you recommend us' (a detractor)."
    # A 0 is a stronger warning than a 6.
    strength = 0.6 + 0.4 * (rule.threshold - latest.value) / max(rule.threshold, 1)
    return Finding(min(1.0, strength), sentence, (latest.event_id,), {"score": score})


def contract_ending(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    today = c.as_of.date()
    horizon = today + timedelta(days=rule.window_days)
    ending = sorted(
        (k for k in c.contracts.values() if not k.auto_renew and today <= k.ends_on <= horizon),
        key=lambda k: k.ends_on,
    )
    if not ending:
        return None
    first = ending[0]
    days = (first.ends_on - today).days
    sentence = (
        f"Contract {first.contract_id} ends on {first.ends_on.isoformat()} "
        f"(in {days} days) and has not been renewed."
    )
    # Closer to the end date, stronger.
    strength = 0.5 + 0.5 * (1 - days / max(rule.window_days, 1))
    figures: Figures = {"ends_on": first.ends_on.isoformat(), "days": days}
    return Finding(strength, sentence, tuple(reversed(first.event_ids)), figures)


def loyalty_quiet(c: CustomerFacts, rule: SignalRule, _: Context) -> Finding | None:
    window = timedelta(days=rule.window_days)
    activity = c.of(FactKind.LOYALTY_ACTIVITY)
    before = [f for f in activity if f.at <= c.as_of - window]
    recent = _between(activity, c.as_of - window, c.as_of)
    if recent or len(before) < max(rule.threshold, 1):
        return None
    last = before[-1]
    days = (c.as_of - last.at).days
    sentence = (
        f"No loyalty activity for {days} days, after {len(before)} earlier "
        "(check-ins or rewards redeemed)."
    )
    return Finding(1.0, sentence, (last.event_id,), {"days": days, "before": len(before)})


SIGNALS: dict[Signal, Evaluator] = {
    "order_frequency_drop": order_frequency_drop,
    "order_overdue": order_overdue,
    "complaints_increase": complaints_increase,
    "interactions_fall": interactions_fall,
    "key_contact_changed": key_contact_changed,
    "refunds_rising": refunds_rising,
    "nps_detractor": nps_detractor,
    "contract_ending": contract_ending,
    "loyalty_quiet": loyalty_quiet,
}
