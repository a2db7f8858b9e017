# -*- test-case-name: txmsg.test.test_tap_worker -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd txmsg-worker}: Options and makeService.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any, cast

from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.python import usage

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    check_redis_url,
    choice,
    redis_url_option,
    seconds,
    url_from_environment,
    whole_number,
)
from txmsg._options import load_user_object, modules_from_cwd
from txmsg._reactor import maybe_global_reactor
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.ops.dashboard.service import check_dashboard_mount, mount_on_health
from txmsg.ops.options import OpsOptions
from txmsg.ops.service import worker_health
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.redis.url import is_redis_url
from txmsg.tap._listen_failure import exit_status_at_end
from txmsg.worker.limits import check_limits_redis
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.service import WorkerService
from txmsg.worker.tasks import TaskCatalog, load_tasks

__all__ = ["Options", "makeService"]


def load_function(spec: str) -> Any:
    """
    Import C{module:function}.

    @raise usage.UsageError: naming the module and the problem.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise usage.UsageError("--raw-handler needs module:function, not {!r}".format(spec))
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise usage.UsageError(
            "cannot import {!r}: {}: {}".format(module_name, type(e).__name__, e)
        )
    function = getattr(module, attribute, None)
    if not callable(function):
        raise usage.UsageError("{!r} has no function {!r}".format(module_name, attribute))
    return function


def _broker_url(text: str) -> str:
    """
    An AMQP or Redis URL (the scheme tells which).
    """
    check = check_redis_url if is_redis_url(text) else check_amqp_url
    try:
        return check(text, "--broker")
    except ValueError as e:
        raise usage.UsageError(str(e)) from None


class Options(OpsOptions):
    """
    Command-line options of C{twistd txmsg-worker}.
    """

    synopsis = "--tasks MODULE[:ATTRIBUTE] [options]"
    longdesc = (
        "Consume tasks from RabbitMQ and run them. A delivery is acked only after its "
        "task succeeded or was durably moved to a retry or dead-letter queue. "
        "The broker URL comes from --amqp or $TXMSG_AMQP_URL (default "
        "amqp://guest:guest@127.0.0.1:5672/%2F); Redis (control channel and worker "
        "registry) from --redis or $TXMSG_REDIS_URL, and is not used when neither is set."
    )
    optFlags = [
        [
            "transactions",
            None,
            "RabbitMQ: always consume on a transactional channel and publish each reply "
            "to an ordinary queue in one transaction with its ack (one round trip instead "
            "of two). By default the worker does so by itself while at least half of its "
            "tasks reply to an ordinary queue, and goes back to plain acks when at most "
            "a tenth do.",
        ],
        [
            "no-transactions",
            None,
            "RabbitMQ: never consume on a transactional channel: plain acks, every reply "
            "confirmed before its ack.",
        ],
        [
            "retry-refused-login",
            None,
            "When RabbitMQ refuses the login or vhost, keep retrying with backoff "
            "(and report it in /ready) instead of exiting with status 1.",
        ],
        [
            "dashboard",
            None,
            "Also serve the web dashboard at /dashboard/ on the --health endpoint "
            "(loopback only; see twistd txmsg-dashboard for more).",
        ],
    ]
    optParameters = [
        ["tasks", "t", None, "Module (or module:attribute) defining a TaskCatalog."],
        [
            "amqp",
            None,
            None,
            "RabbitMQ URL, or several comma-separated (the nodes of a cluster) "
            "(default: $TXMSG_AMQP_URL).",
            amqp_url_option(),
        ],
        [
            "broker",
            None,
            None,
            "The broker: an amqp(s):// URL (as --amqp), or a redis://, rediss:// or "
            "unix:// URL for Redis Streams (no RabbitMQ; also the control channel "
            "unless --redis is given). Default: RabbitMQ at --amqp.",
            _broker_url,
        ],
        [
            "visibility-timeout",
            None,
            30.0,
            "Redis Streams: seconds before other workers claim the tasks of a worker "
            "that stopped answering.",
            seconds("visibility-timeout", 0.1),
        ],
        [
            "redis",
            None,
            None,
            "Redis URL for the control channel (default: $TXMSG_REDIS_URL).",
            redis_url_option(),
        ],
        ["name", "n", None, "Worker name (default: HOST.PID); control channel rq:pubsub:NAME."],
        [
            "prefetch",
            "p",
            1,
            "Unacked tasks per queue (1: fair dispatch).",
            whole_number("prefetch", 1),
        ],
        ["concurrency", "c", 4, "Threads for blocking tasks.", whole_number("concurrency", 1)],
        [
            "grace",
            "g",
            30.0,
            "Seconds running tasks get to finish on shutdown.",
            seconds("grace"),
        ],
        [
            "max-retries",
            "r",
            3,
            "Retries after a failure before dead-lettering.",
            whole_number("max-retries"),
        ],
        [
            "retry-delay",
            None,
            1.0,
            "Seconds before the first retry (doubling each time).",
            seconds("retry-delay", 0.001),
        ],
        [
            "retry-max-delay",
            None,
            300.0,
            "Longest wait between retries, in seconds.",
            seconds("retry-max-delay", 0.001),
        ],
        [
            "queue-type",
            None,
            None,
            "Declare new work and dead-letter queues and the delay levels of this type: "
            "quorum (replicated across a cluster, at-least-once dead-lettering, a "
            "broker-side delivery limit) or classic (the broker's default when not given).",
            choice("queue-type", "classic", "quorum"),
        ],
        [
            "results",
            None,
            None,
            "Redis URL where each task's status and result are stored, readable from "
            "any process (txmsg result ID); also enables revoke. Default: none.",
            redis_url_option("results"),
        ],
        [
            "results-ttl",
            None,
            86400,
            "Seconds a task's status and result are kept after its last change.",
            whole_number("results-ttl", 1),
        ],
        [
            "max-priority",
            None,
            None,
            "Declare new work queues with x-max-priority N (1-255; 10 is plenty): tasks sent "
            "with a higher priority run first. Classic queues only; on Redis, one stream "
            "per level.",
            whole_number("max-priority", 1),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["queues"] = []
        self["raw-handlers"] = []

    def opt_queue(self, name: str) -> None:
        """
        Consume this queue (repeat for several; default: tasks).
        """
        if not name:
            raise usage.UsageError("--queue needs a name")
        self["queues"].append(name)

    opt_q = opt_queue

    def opt_raw_handler(self, spec: str) -> None:
        """
        [QUEUE=]module:function called with each raw message body of QUEUE
        (default: the --queue queues), for plain-text queues.
        """
        queue, _, function = spec.rpartition("=")
        self["raw-handlers"].append((queue or None, function))

    def postOptions(self) -> None:
        """
        Validate numbers, load the task module and raw handlers.
        """
        self.post_ops_options()
        if self["dashboard"]:
            check_dashboard_mount(self["health"])
        delay, max_delay = self["retry-delay"], self["retry-max-delay"]
        if max_delay < delay:
            raise usage.UsageError(
                "--retry-max-delay ({}) must be at least --retry-delay ({})".format(
                    max_delay, delay
                )
            )
        priority = self["max-priority"]
        if priority is not None and priority > 255:
            raise usage.UsageError("--max-priority must be from 1 to 255, not {}".format(priority))
        if priority is not None and self["queue-type"] == "quorum":
            raise usage.UsageError("--max-priority needs classic queues, not --queue-type quorum")
        if self["transactions"] and self["no-transactions"]:
            raise usage.UsageError("--transactions and --no-transactions contradict each other")
        self["retry"] = RetryPolicy(
            max_retries=self["max-retries"], initial_delay=delay, max_delay=max_delay
        )
        modules_from_cwd()
        raw = {}
        for queue, function_spec in self["raw-handlers"]:
            function = load_function(function_spec)
            targets = [queue] if queue else (self["queues"] or ["tasks"])
            for target in targets:
                raw[target] = function
        self["raw"] = raw
        if self["tasks"] is None:
            if not raw:
                raise usage.UsageError("--tasks MODULE is required (or --raw-handler)")
            self["task-registry"] = TaskCatalog()
        else:
            self["task-registry"] = load_user_object(load_tasks, self["tasks"], "--tasks")
        if not self["queues"]:
            self["queues"] = [] if raw and not self["tasks"] else ["tasks"]
        if self["broker"] is not None and not is_redis_url(self["broker"]):
            self["amqp"], self["broker"] = self["broker"], None
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)
        try:
            check_limits_redis(self["task-registry"], self["redis"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


def freeze_startup_objects() -> None:
    """
    Move every object alive once the worker has started (modules, classes,
    functions, the services: tens of thousands) out of the garbage
    collector's sight (C{gc.freeze}).

    Tasks in flight, each waiting for its reply's confirm, live long enough
    to reach the oldest generation, so a full collection comes every few
    thousand tasks; without the freeze each of those goes through all the
    start-up objects again (some 20 ms, a few per cent of the worker's CPU).
    What is frozen is never collected: a start-up object that later becomes
    part of a garbage cycle stays in memory (only start-up objects, once).
    """
    gc.freeze()


def makeService(options: Options, reactor: IReactorTime | None = None) -> Any:
    """
    Build the worker.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one by default.
    """
    reactor = maybe_global_reactor(reactor)

    core = cast(IReactorCore, reactor)  # the running reactor (see txmsg._reactor)

    def shutdown() -> None:
        if core.running:
            core.stop()

    worker = WorkerService(
        options["task-registry"],
        queues=[q for q in options["queues"] if q not in options["raw"]],
        raw_handlers=options["raw"],
        amqp_url=options["amqp"],
        redis_url=options["redis"],
        name=options["name"],
        prefetch=options["prefetch"],
        concurrency=options["concurrency"],
        grace=options["grace"],
        retry=options["retry"],
        on_shutdown=shutdown,
        handle_signals=True,
        queue_type=options["queue-type"],
        max_priority=options["max-priority"],
        transactions=(
            True if options["transactions"] else False if options["no-transactions"] else None
        ),
        reactor=reactor,
        results_url=options["results"],
        results_ttl=options["results-ttl"],
        broker_url=options["broker"],
        visibility_timeout=options["visibility-timeout"],
    )
    amqp = worker.amqp
    if amqp is not None:
        amqp.retry_refused_login = bool(options["retry-refused-login"])
    if amqp is not None and not amqp.retry_refused_login:

        def give_up(refusal: str) -> None:
            # the connection logged the refusal once; stop with status 1
            exit_status_at_end(1)
            shutdown()

        amqp.add_refusal_observer(give_up)
    if IReactorCore.providedBy(reactor):
        core.callWhenRunning(freeze_startup_objects)
    if options["health"] is not None:
        health = worker_health(worker, options["health"], reactor=reactor)
        health.setName("health")
        health.setServiceParent(worker)
        if options["dashboard"]:
            mount_on_health(health, worker)
    return worker
