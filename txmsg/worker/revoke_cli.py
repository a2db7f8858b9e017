# -*- test-case-name: txmsg.test.test_worker_result_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg revoke ID [ID...]}: revoke tasks.  A queued task is not run when it
is delivered (it is dead-lettered with reason C{revoked}); a running one is
cancelled by the worker that holds it.  Workers learn of it over Redis, so
they must run with C{--results} on the same Redis.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.usage import UsageError

from txmsg._coerce import check_redis_url, redis_url_option, seconds, url_from_environment
from txmsg._options import GnuOptions
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.worker._cli_common import run_command
from txmsg.worker.result_cli import result_store

__all__ = ["Options", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg revoke}.
    """

    synopsis = "TASK_ID [TASK_ID...] [--redis URL]"
    optParameters = [
        [
            "redis",
            None,
            None,
            "Redis URL of the result store, as the workers' --results "
            "(default: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0).",
            redis_url_option(),
        ],
        ["timeout", "t", 10.0, "Seconds to wait for Redis.", seconds("timeout", 0, above=True)],
    ]

    def parseArgs(self, *task_ids: str) -> None:
        """
        The task ids (at least one).
        """
        if not task_ids:
            raise UsageError("name at least one task id")
        self["ids"] = list(task_ids)

    def postOptions(self) -> None:
        """
        Take the URL from the environment when C{--redis} is not given.
        """
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)


async def _main(reactor: IReactorTime, options: Options) -> int:
    async with result_store(reactor, options["redis"], options["timeout"]) as store:
        for task_id in options["ids"]:
            await store.revoke(task_id)
            state = await store.status(task_id)
            status = state.status if state is not None else "unknown"
            if status == "revoked":
                print("{}: revoked".format(task_id))
            else:  # running (its worker cancels it) or already finished
                print("{}: {}; revoke sent to the workers".format(task_id, status))
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[Any]:
    """
    Run C{txmsg revoke}.
    """
    return run_command("revoke", _main(reactor, options))
