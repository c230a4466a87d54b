"""The pipeline HTTP API under /api/v1: parse, authorise, call the handler, answer.

Conventions every endpoint keeps (as in contacts):

* the tenant comes from the token only; another tenant's order or deal is a 404;
* ``ETag: "<version>"`` on every answer about one aggregate; ``If-Match`` on a
  write makes it conditional (412 when the aggregate is at another version);
* a customer named in a body must exist in the tenant (422 naming the field);
  a customer in the path that does not is a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import (
    Depends,
    Path,
    Request,
    Response,
)
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from libs.auth import Principal, require
from libs.platform.app import etag_for, if_match_version
from services.pipeline.commands import (
    ID_PATTERN,
    Command,
)
from services.pipeline.handlers import Pipeline, Written

C = TypeVar("C", bound=Command)
MAX_PAGE = 200
DealStatus = Literal["open", "won", "lost"]

ItemId = Annotated[str, Path(pattern=ID_PATTERN)]
IfMatch = Annotated[int | None, Depends(if_match_version)]


async def pipeline_of(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(pipeline_of)]
Reader = Annotated[Principal, Depends(require("customers:read"))]
OrderWriter = Annotated[Principal, Depends(require("orders:write"))]
Refunder = Annotated[Principal, Depends(require("orders:refund"))]
Configurer = Annotated[Principal, Depends(require("pipeline:configure"))]


class Body(BaseModel):
    # A misspelt field must not pass silently.
    model_config = ConfigDict(extra="forbid")


class WrittenItem(BaseModel):
    id: str
    version: int


def command_from(model: type[C], data: Mapping[str, Any], **server_set: Any) -> C:
    """Validate a command the way a request body is, so errors are the usual 422."""
    try:
        return model.model_validate({**data, **server_set})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


def bearer_of(request: Request) -> str | None:
    """The caller's credentials, forwarded when contacts must be asked about a customer."""
    return request.headers.get("Authorization")


def written(response: Response, result: Written) -> WrittenItem:
    response.headers["ETag"] = etag_for(result.version)
    return WrittenItem(id=result.id, version=result.version)


# --- orders ----------------------------------------------------------------------------
