"""The Ticket aggregate: ``decide(command, ticket, now) -> events``; ``evolve`` folds them.

A ticket's state (``state``) keeps the times its SLA clocks need (when it was opened,
first answered, and every status it went through), so the clocks are a pure function of
the stream (``sla.py``). Rules (``decisions``; refusals in ``errors``):

* a closed ticket is final: nothing changes it any more;
* only a solved ticket can be closed, and a complaint only once a follow-up visit
  (回访) since it was last (re)opened found the customer satisfied;
* a follow-up visit that finds the customer unsatisfied reopens a solved ticket.
"""

from services.tickets.domain.ticket.decisions import applied, decide, decide_open
from services.tickets.domain.ticket.errors import (
    FollowUpVisitMissing,
    NoBreach,
    NotReopenable,
    NotSolvedYet,
    TicketClosed,
    TicketNotFound,
    VisitInTheFuture,
)
from services.tickets.domain.ticket.state import (
    AppliedSla,
    Ticket,
    evolve,
    existing,
    fold,
    next_due,
)

__all__ = [
    "AppliedSla",
    "FollowUpVisitMissing",
    "NoBreach",
    "NotReopenable",
    "NotSolvedYet",
    "Ticket",
    "TicketClosed",
    "TicketNotFound",
    "VisitInTheFuture",
    "applied",
    "decide",
    "decide_open",
    "evolve",
    "existing",
    "fold",
    "next_due",
]
