# -*- test-case-name: txmsg.test.test_tap_scheduler -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd txmsg-scheduler}: Options and makeService.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    check_redis_url,
    redis_url_option,
    seconds,
    url_from_environment,
)
from txmsg._options import load_user_object
from txmsg._reactor import maybe_global_reactor
from txmsg.amqp.connection import AMQPConnection
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.ops.options import OpsOptions
from txmsg.ops.service import scheduler_health
from txmsg.ordered import OrderedMultiService
from txmsg.redis.service import RedisService
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.schedule.entries import load_schedule
from txmsg.schedule.service import SchedulerService, default_owner, task_sender
from txmsg.worker.client import TaskClient

__all__ = ["Options", "makeService"]


class Options(OpsOptions):
    """
    Command-line options of C{twistd txmsg-scheduler}.
    """

    synopsis = "--schedule MODULE[:ATTRIBUTE] [options]"
    longdesc = (
        "Send the periodic tasks a schedule module declares, each tick exactly once "
        "across every scheduler of the same --name that shares the Redis server "
        "(one leader at a time; the others take over within --lease seconds). "
        "RabbitMQ from --amqp or $TXMSG_AMQP_URL; Redis from --redis or $TXMSG_REDIS_URL "
        "(without Redis: no failover; run only one scheduler)."
    )
    optParameters = [
        ["schedule", "s", None, "Module (or module:attribute) defining a Schedule."],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "redis",
            None,
            None,
            "Redis URL for the lease and the record of fired ticks (default: $TXMSG_REDIS_URL).",
            redis_url_option(),
        ],
        ["name", "n", "default", "Schedule name: schedulers of one name share one lease."],
        ["queue", "q", "tasks", "Work queue of entries that name none."],
        [
            "lease",
            None,
            10.0,
            "Seconds the leader's lease lasts: a dead leader is replaced within this time.",
            seconds("lease", 1.0),
        ],
        ["owner", None, None, "This scheduler's name in logs and the lease (default: HOST.PID.x)."],
    ]

    def postOptions(self) -> None:
        """Load the schedule module; take URLs from the environment."""
        self.post_ops_options()
        self["loaded"] = load_user_object(load_schedule, self["schedule"], "--schedule")
        if self["owner"] is not None and "|" in self["owner"]:
            raise usage.UsageError("--owner may not contain '|'")
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)


def makeService(options: Options, reactor: IReactorTime | None = None) -> Any:
    """
    Build the scheduler: AMQP and Redis connections, and the
    L{SchedulerService} that stops before them.
    """
    reactor = maybe_global_reactor(reactor)
    top = OrderedMultiService()
    owner = options["owner"] or default_owner()
    amqp = AMQPConnection(
        options["amqp"], reactor=reactor, connection_name="txmsg-scheduler " + owner
    )
    amqp.setName("amqp")
    amqp.setServiceParent(top)
    redis = None
    if options["redis"] is not None:
        redis = RedisService(options["redis"], reactor=reactor)
        redis.setName("redis")
        redis.setServiceParent(top)
    scheduler = SchedulerService(
        options["loaded"],
        task_sender(TaskClient(amqp, queue=options["queue"]), options["queue"]),
        redis,
        name=options["name"],
        owner=owner,
        lease=options["lease"],
        reactor=reactor,
    )
    scheduler.setName("scheduler")
    scheduler.setServiceParent(top)
    top.uses(scheduler, *[s for s in (amqp, redis) if s is not None])
    if options["health"] is not None:
        health = scheduler_health(scheduler, amqp, redis, options["health"], reactor=reactor)
        health.setName("health")
        health.setServiceParent(top)
    return top
