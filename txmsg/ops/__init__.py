# -*- test-case-name: txmsg.test.test_ops_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Operations: health and readiness endpoints, Prometheus metrics and
structured (JSON-lines) logs for txmsg services.

    from txmsg.ops import worker_health
    worker_health(worker, "tcp:8081:interface=127.0.0.1").setServiceParent(worker)

See C{docs/operations.md}.
"""

from txmsg.ops.health import (
    Check,
    HealthRoot,
    LiveResource,
    MetricsResource,
    ReadyResource,
)
from txmsg.ops.lag import ReactorLagMonitor
from txmsg.ops.logs import (
    JSONLinesObserver,
    event_as_json,
    observer_factory,
    redact_text,
)
from txmsg.ops.service import (
    HealthService,
    echo_checks,
    echo_health,
    worker_checks,
    worker_health,
)

__all__ = [
    "Check",
    "HealthRoot",
    "HealthService",
    "JSONLinesObserver",
    "LiveResource",
    "MetricsResource",
    "ReactorLagMonitor",
    "ReadyResource",
    "echo_checks",
    "echo_health",
    "event_as_json",
    "observer_factory",
    "redact_text",
    "worker_checks",
    "worker_health",
]
