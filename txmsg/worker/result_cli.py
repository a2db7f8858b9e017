# -*- test-case-name: txmsg.test.test_worker_result_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg result ID [--wait] [--timeout S] [--json]}: read a task's status
and result from the result store, from any process.

Without C{--wait} it prints what is stored now; with it, it waits (pushed
by Redis, not polled) until the task reaches a terminal status.  Exit
status: 0 when the task succeeded or is still on its way (without
C{--wait}), 1 when it failed, was dead-lettered, revoked or expired, when
nothing is stored for it, or when it did not finish in time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txmsg._coerce import check_redis_url, redis_url_option, seconds, url_from_environment
from txmsg._options import GnuOptions
from txmsg.redis.service import RedisService
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.worker._cli_common import CommandError, run_command
from txmsg.worker.results import RedisResultStore, ResultTimeout
from txmsg.worker.states import SUCCEEDED, TaskState

__all__ = ["Options", "format_state", "result_store", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg result}.
    """

    synopsis = "TASK_ID [--wait] [--timeout S] [--json] [--redis URL]"
    optParameters = [
        [
            "redis",
            None,
            None,
            "Redis URL of the result store, as the worker's --results "
            "(default: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0).",
            redis_url_option(),
        ],
        [
            "timeout",
            "t",
            30.0,
            "Seconds to wait for Redis and, with --wait, for the task to finish.",
            seconds("timeout", 0, above=True),
        ],
    ]
    optFlags = [
        ["wait", "w", "Wait until the task succeeded, failed or otherwise finished."],
        ["json", "j", "Print the whole stored state as one JSON object."],
    ]

    def parseArgs(self, task_id: str) -> None:  # type: ignore[override]
        """
        The task id.
        """
        self["id"] = task_id

    def postOptions(self) -> None:
        """
        Take the URL from the environment when C{--redis} is not given.
        """
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)


@asynccontextmanager
async def result_store(
    reactor: IReactorTime, url: str | None, timeout: float
) -> AsyncIterator[RedisResultStore]:
    """
    A L{RedisResultStore} on a started Redis connection, stopped on exit.

    @raise CommandError: when Redis cannot be reached within C{timeout}.
    """
    redis = RedisService(url, reactor=reactor, command_timeout=timeout)
    redis.startService()
    try:
        try:
            await redis.when_connected(timeout)
        except Exception as e:
            raise CommandError("cannot reach Redis: {}".format(e)) from None
        yield RedisResultStore(redis, clock=reactor)
    finally:
        await redis.stopService()


def format_state(state: TaskState) -> str:
    """
    One line: the id, the status, and the result or the error.
    """
    line = "{} {}".format(state.id, state.status)
    if state.status == SUCCEEDED:
        return "{}: {}".format(line, json.dumps(state.result))
    if state.error_type:
        return "{}: {}: {}".format(line, state.error_type, state.error_message or "")
    return line


async def _main(reactor: IReactorTime, options: Options) -> int:
    task_id, timeout = options["id"], options["timeout"]
    async with result_store(reactor, options["redis"], timeout) as store:
        if options["wait"]:
            try:
                state: TaskState | None = await store.wait(task_id, timeout)
            except ResultTimeout as e:
                raise CommandError(str(e)) from None
        else:
            state = await store.status(task_id)
    if state is None:
        raise CommandError(
            "nothing stored for task {} (unknown, not run with --results, or past its TTL)".format(
                task_id
            )
        )
    print(json.dumps(state.as_dict()) if options["json"] else format_state(state))
    return 0 if state.ok or not state.done else 1


def run(reactor: IReactorTime, options: Options) -> Deferred[Any]:
    """
    Run C{txmsg result}.
    """
    return run_command("result", _main(reactor, options))
