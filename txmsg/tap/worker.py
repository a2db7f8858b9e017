# -*- test-case-name: txmsg.test.test_tap_worker -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd txmsg-worker}: Options and makeService.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from twisted.python import usage

from txmsg._reactor import maybe_global_reactor
from txmsg.ops.options import OpsOptions
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.tasks import TaskRegistry, load_tasks

__all__ = ["Options", "makeService"]


def _number(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        n = kind(value)
    except (TypeError, ValueError):
        raise usage.UsageError("--{} must be a number, not {!r}".format(name, value))
    if not n >= minimum:
        raise usage.UsageError("--{} must be at least {}, not {}".format(name, minimum, value))
    return n


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
    optParameters = [
        ["tasks", "t", None, "Module (or module:attribute) defining a TaskRegistry."],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL)."],
        ["redis", None, None, "Redis URL for the control channel (default: $TXMSG_REDIS_URL)."],
        ["name", "n", None, "Worker name (default: HOST.PID); control channel rq:pubsub:NAME."],
        ["prefetch", "p", "1", "Unacked tasks per queue (1: fair dispatch)."],
        ["concurrency", "c", "4", "Threads for blocking tasks."],
        ["grace", "g", "30", "Seconds running tasks get to finish on shutdown."],
        ["max-retries", "r", "3", "Retries after a failure before dead-lettering."],
        ["retry-delay", None, "1", "Seconds before the first retry (doubling each time)."],
        ["retry-max-delay", None, "300", "Longest wait between retries, in seconds."],
        [
            "queue-type",
            None,
            None,
            "Declare new work and dead-letter queues of this type: quorum (replicated "
            "across a cluster) or classic (the broker's default when not given).",
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
        self["prefetch"] = _number("prefetch", self["prefetch"], int, 1)
        self["concurrency"] = _number("concurrency", self["concurrency"], int, 1)
        self["grace"] = _number("grace", self["grace"], float, 0)
        self["max-retries"] = _number("max-retries", self["max-retries"], int, 0)
        delay = _number("retry-delay", self["retry-delay"], float, 0.001)
        max_delay = _number("retry-max-delay", self["retry-max-delay"], float, delay)
        self["retry"] = RetryPolicy(
            max_retries=self["max-retries"], initial_delay=delay, max_delay=max_delay
        )
        # Like `python -m`, find task modules in the current directory.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
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
            self["task-registry"] = TaskRegistry()
        else:
            try:
                self["task-registry"] = load_tasks(self["tasks"])
            except ValueError as e:
                raise usage.UsageError(str(e))
        if not self["queues"]:
            self["queues"] = [] if raw and not self["tasks"] else ["tasks"]
        if self["queue-type"] not in (None, "classic", "quorum"):
            raise usage.UsageError("--queue-type must be quorum or classic")
        self["amqp"] = self["amqp"] or os.environ.get("TXMSG_AMQP_URL") or None
        self["redis"] = self["redis"] or os.environ.get("TXMSG_REDIS_URL") or None


def makeService(options: Options, reactor: Any = None) -> Any:
    """
    Build the worker.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one by default.
    """
    reactor = maybe_global_reactor(reactor)
    from txmsg.worker.service import WorkerService

    def shutdown() -> None:
        if reactor.running:
            reactor.stop()

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
        reactor=reactor,
    )
    if options["health"] is not None:
        from txmsg.ops.service import worker_health

        health = worker_health(worker, options["health"], reactor=reactor)
        health.setName("health")
        health.setServiceParent(worker)
    return worker
