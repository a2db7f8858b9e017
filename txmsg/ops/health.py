# -*- test-case-name: txmsg.test.test_ops_health -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
twisted.web resources for an orchestrator and Prometheus:

  - C{/live}: 200 with the reactor lag, rendered on the reactor thread, so
    an answer proves the reactor turns;
  - C{/ready}: 200 when every check passes, else 503; both with a JSON body
    listing the checks and naming what is missing;
  - C{/metrics}: the Prometheus text format (or OpenMetrics when asked for
    by C{Accept}) of a C{CollectorRegistry}, collected on the reactor thread
    so collectors read txmsg's counters without locks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from txmsg.ops.lag import ReactorLagMonitor

__all__ = ["Check", "HealthRoot", "LiveResource", "MetricsResource", "ReadyResource"]


@dataclass(frozen=True)
class Check:
    """
    One readiness condition.

    @ivar name: what is checked (C{amqp}, C{consumer:tasks}, C{redis:pubsub}).
    @ivar ok: whether it holds.
    @ivar detail: a short explanation (never a secret).
    """

    name: str
    ok: bool
    detail: str = ""


def _json(request: IRequest, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")


class LiveResource(Resource):
    """
    C{/live}: always 200 when answered, with the reactor's lag.
    """

    isLeaf = True

    def __init__(self, lag: ReactorLagMonitor) -> None:
        super().__init__()
        self.lag = lag

    def render_GET(self, request: IRequest) -> bytes:
        """
        Answer from the reactor thread with the lag figures.
        """
        return _json(
            request,
            200,
            {
                "status": "alive",
                "reactor_lag_seconds": round(self.lag.lag, 6),
                "max_reactor_lag_seconds": round(self.lag.max_lag, 6),
                "uptime_seconds": round(self.lag.uptime(), 3),
            },
        )


class ReadyResource(Resource):
    """
    C{/ready}: 200 when every check is ok, 503 otherwise.
    """

    isLeaf = True

    def __init__(self, checks: Callable[[], Iterable[Check]]) -> None:
        """
        @param checks: called for every request; returns the current checks.
        """
        super().__init__()
        self.checks = checks

    def render_GET(self, request: IRequest) -> bytes:
        """
        Run the checks; the body lists them and the names of those failing.
        """
        checks = list(self.checks())
        missing = [c.name for c in checks if not c.ok]
        return _json(
            request,
            503 if missing else 200,
            {
                "status": "not ready" if missing else "ready",
                "missing": missing,
                "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
            },
        )


class MetricsResource(Resource):
    """
    C{/metrics}: the registry in Prometheus text (or OpenMetrics) format.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        """
        @param registry: a C{prometheus_client.CollectorRegistry}.
        """
        super().__init__()
        self.registry = registry

    def render_GET(self, request: IRequest) -> bytes:
        """
        Collect now (on the reactor thread) and encode for the client.
        """
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        body: bytes = encoder(self.registry)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body


class HealthRoot(Resource):
    """
    The root: C{/live}, C{/ready}, C{/metrics}; C{/} lists them.
    """

    def __init__(
        self,
        lag: ReactorLagMonitor,
        checks: Callable[[], Iterable[Check]],
        registry: CollectorRegistry,
    ) -> None:
        super().__init__()
        self.putChild(b"live", LiveResource(lag))
        self.putChild(b"ready", ReadyResource(checks))
        self.putChild(b"metrics", MetricsResource(registry))

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        """
        C{/} is the index; anything unknown is a 404.
        """
        if path == b"":
            return self
        return super().getChild(path, request)

    def render_GET(self, request: IRequest) -> bytes:
        """
        List the endpoints.
        """
        return _json(request, 200, {"endpoints": ["/live", "/ready", "/metrics"]})
