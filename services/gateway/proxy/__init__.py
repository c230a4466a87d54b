"""Forwarding: a request to the service that owns it, and the answer back, streamed both ways.

Big bodies are never held in memory: a 50 MB CSV import goes to contacts chunk by
chunk as it arrives, and a big export comes back the same way. An answer that
declares a small length (most of them: a profile, a 360 view) is read whole and
sent at once, which costs far less than a stream. What can go wrong
on the way has one status each, with a JSON body naming the upstream:

- 503: the service did not take the request (refused, no connection in time, no
  free connection in the pool). Nothing was done, so retrying is safe.
- 504: the request was sent but no answer came in time. It may or may not have
  happened; a client retries writes with If-Match or checks first.
- 502: the service broke the connection or answered something that is not HTTP.

A client is never allowed to hold a connection to a service while it makes up its
mind: a small body is read whole before a connection is taken, a big one must start
before, and every wait for the client's next bytes is bounded (408 after
``REQUEST_BODY_TIMEOUT_SECONDS``). Each request counts against its caller's and
tenant's requests in flight until its answer is forwarded, so a client that stalls
runs out of its own share, never the pool.

Here: ``forwarding.py`` (the request up, the answer back), ``bodies.py`` (the
client's body, the service's answer as it streams) and ``transport.py`` (the pooled
upstream client); what the rest of the gateway uses is re-exported.
"""

from services.gateway.proxy.bodies import ClientBody, ForwardedResponse, RequestBodyTimedOut
from services.gateway.proxy.forwarding import (
    UpstreamFailed,
    UpstreamProxy,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from services.gateway.proxy.transport import UpstreamTransport, new_upstream_client

__all__ = [
    "ClientBody",
    "ForwardedResponse",
    "RequestBodyTimedOut",
    "UpstreamFailed",
    "UpstreamProxy",
    "UpstreamTimedOut",
    "UpstreamTransport",
    "UpstreamUnavailable",
    "new_upstream_client",
]
