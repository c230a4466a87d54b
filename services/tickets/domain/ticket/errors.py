"""Why a command on a ticket is refused: each a Problem Details answer (404, 409, 422)."""

from __future__ import annotations

from libs.platform.errors import Conflict, NotFound, Unprocessable


class TicketNotFound(NotFound):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} not found", ticket_id=ticket_id)


class TicketClosed(Conflict):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} is closed; open a new one", ticket_id=ticket_id)


class NotSolvedYet(Conflict):
    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(
            f"ticket {ticket_id} is {status}: only a solved ticket can be closed",
            ticket_id=ticket_id,
            ticket_status=status,
        )


class FollowUpVisitMissing(Conflict):
    """The complaint closed loop: no closing without a satisfied customer."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(
            f"complaint {ticket_id} cannot be closed before a follow-up visit finds the "
            "customer satisfied",
            ticket_id=ticket_id,
            reason="follow_up_visit_required",
        )


class NotReopenable(Conflict):
    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(
            f"ticket {ticket_id} is {status}: only a solved ticket can be reopened",
            ticket_id=ticket_id,
            ticket_status=status,
        )


class NoBreach(Conflict):
    """A breach was asked for a target that is not (yet) missed, or already recorded."""

    def __init__(self, ticket_id: str, target: str) -> None:
        super().__init__(f"{target} of ticket {ticket_id} is not newly breached", target=target)


class VisitInTheFuture(Unprocessable):
    def __init__(self) -> None:
        super().__init__("visited_at", "is in the future")
