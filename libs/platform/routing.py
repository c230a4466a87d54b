"""The router every service declares its operations on.

``ServiceRouter`` is FastAPI's ``APIRouter`` whose operations each end with the
platform's input checks that no single field's type states: today, no NUL character
anywhere in a request (``libs.platform.nul_characters``). The check is added to the
operation's signature as its last parameter, so FastAPI runs it after the operation's
own dependencies (authentication and authorisation first), and it survives
``include_router`` with no reliance on FastAPI's internals.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from libs.platform.nul_characters import refuse_nul_characters

_CHECKS = "_platform_input_checks"
# A create that names its own id (or an Idempotency-Key) answers a replay with 200 and
# what the first request made: documented on each such operation.
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Seen before (the same id or key): nothing new, what the first made"}
}


def _with_input_checks(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(endpoint, _CHECKS, False):
        return endpoint
    # The endpoint's annotations resolved in its own module: the wrapper lives here.
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    parameters = [
        parameter.replace(annotation=hints.get(name, parameter.annotation))
        for name, parameter in signature.parameters.items()
    ]
    parameters.append(
        inspect.Parameter(
            _CHECKS,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[None, Depends(refuse_nul_characters)],
        )
    )
    returns = hints.get("return", signature.return_annotation)
    checked = signature.replace(
        parameters=parameters,
        # get_type_hints makes "-> None" NoneType; FastAPI reads None as "no body".
        return_annotation=None if returns is type(None) else returns,
    )

    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def operation(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop(_CHECKS, None)
            return await endpoint(*args, **kwargs)

        wrapped: Callable[..., Any] = operation
    else:

        @functools.wraps(endpoint)
        def sync_operation(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop(_CHECKS, None)
            return endpoint(*args, **kwargs)

        wrapped = sync_operation
    wrapped.__signature__ = checked  # type: ignore[attr-defined]
    setattr(wrapped, _CHECKS, True)
    return wrapped


class ServiceRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("include_in_schema", True):
            endpoint = _with_input_checks(endpoint)
        super().__init__(path, endpoint, **kwargs)


class ServiceRouter(APIRouter):
    """An ``APIRouter`` whose documented operations refuse a NUL character (422)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", ServiceRoute)
        super().__init__(**kwargs)
