# -*- test-case-name: txmsg.test.test_dashboard_resources,txmsg.test.test_tap_dashboard -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The txmsg web dashboard: queues (depth, consumers, rates, an hour of
history), workers, dead letters (look, requeue, delete, purge), tasks; a
C{twisted.web} resource tree served by C{twistd txmsg-dashboard}, mountable
on a worker's health port or in any C{twisted.web} site.

    from txmsg.ops.dashboard import DashboardRoot, QueueSampler, PassiveDeclareStats

    sampler = QueueSampler(PassiveDeclareStats(amqp), queues=["tasks"])
    sampler.setServiceParent(application)
    site_root.putChild(b"txmsg", DashboardRoot(sampler, amqp))
"""

from txmsg.ops.dashboard._auth import TokenChecker, protect, read_auth_file
from txmsg.ops.dashboard._history import QueueHistory, QueueSample
from txmsg.ops.dashboard._metrics import QueueCollector, dashboard_registry
from txmsg.ops.dashboard._resources import DashboardRoot
from txmsg.ops.dashboard._sampler import QueueSampler
from txmsg.ops.dashboard._stats import ManagementStats, PassiveDeclareStats, StatsUnavailable

__all__ = [
    "DashboardRoot",
    "ManagementStats",
    "PassiveDeclareStats",
    "QueueCollector",
    "QueueHistory",
    "QueueSample",
    "QueueSampler",
    "StatsUnavailable",
    "TokenChecker",
    "dashboard_registry",
    "protect",
    "read_auth_file",
]
