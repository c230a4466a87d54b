"""The pipeline HTTP API under /api/v1: parse, authorise, call the handler, answer.

Conventions every endpoint keeps (as in contacts):

* the tenant comes from the token only; another tenant's order or deal is a 404;
* ``ETag: "<version>"`` on every answer about one aggregate; ``If-Match`` on a
  write makes it conditional (412 when the aggregate is at another version);
* a customer named in a body must exist in the tenant (422 naming the field);
  a customer in the path that does not is a 404.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import (
    Depends,
    Path,
    Request,
    Response,
)
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.platform.dependencies import etag_for
from services.pipeline.commands import (
    ID_PATTERN,
)
from services.pipeline.handlers import Pipeline, Written

MAX_PAGE = 200
DealStatus = Literal["open", "won", "lost"]

ItemId = Annotated[str, Path(pattern=ID_PATTERN)]


async def pipeline_of(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(pipeline_of)]
Reader = Annotated[Principal, Depends(require("customers:read"))]
OrderWriter = Annotated[Principal, Depends(require("orders:write"))]
Refunder = Annotated[Principal, Depends(require("orders:refund"))]
Configurer = Annotated[Principal, Depends(require("pipeline:configure"))]


class WrittenItem(BaseModel):
    id: str
    version: int


def written(response: Response, result: Written) -> WrittenItem:
    response.headers["ETag"] = etag_for(result.version)
    return WrittenItem(id=result.id, version=result.version)


# --- orders ----------------------------------------------------------------------------
