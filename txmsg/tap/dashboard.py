# -*- test-case-name: txmsg.test.test_tap_dashboard -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd txmsg-dashboard}: Options and makeService.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.endpoints import serverFromString
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
from txmsg._endpoints import loopback_by_default
from txmsg._options import load_user_object
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.ops.dashboard._auth import (
    TokenChecker,
    is_loopback_endpoint,
    is_tls_endpoint,
    read_auth_file,
)
from txmsg.ops.dashboard.service import DashboardService
from txmsg.ops.options import OpsOptions
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR

__all__ = ["TOKEN_ENV_VAR", "Options", "makeService"]

#: The environment variable that may hold the access token.
TOKEN_ENV_VAR = "TXMSG_DASHBOARD_TOKEN"
#: The environment variable that may hold the management API URL.
MANAGEMENT_ENV_VAR = "TXMSG_RABBITMQ_MANAGEMENT_URL"


class Options(OpsOptions):
    """
    Command-line options of C{twistd txmsg-dashboard}.
    """

    synopsis = "[--listen ENDPOINT] [--amqp URL] [--redis URL] [options]"
    longdesc = (
        "A web dashboard for txmsg: queues (depth, consumers, rates, an hour of history), "
        "workers, dead letters (requeue, delete, purge) and /metrics. It listens on "
        "loopback unless told otherwise; any other interface needs --auth-file or a "
        "token ($" + TOKEN_ENV_VAR + ")."
    )
    optFlags = [["read-only", None, "Show everything, allow no action."]]
    optParameters = [
        [
            "listen",
            "l",
            "tcp:8082",
            "Endpoint to serve on (loopback unless interface= says otherwise; ssl:... for TLS).",
        ],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "redis",
            None,
            None,
            "Redis URL of the worker roster (default: $TXMSG_REDIS_URL; without it no "
            "workers are shown).",
            redis_url_option(),
        ],
        [
            "management",
            None,
            None,
            "RabbitMQ management API, http://user:password@host:15672/ (default: $"
            + MANAGEMENT_ENV_VAR
            + "); without it, queues are read with passive declares.",
        ],
        [
            "interval",
            "i",
            5.0,
            "Seconds between samples of the queues and workers.",
            seconds("interval", 0.1),
        ],
        [
            "history",
            None,
            3600.0,
            "Seconds of history kept per queue (for the charts).",
            seconds("history", 1),
        ],
        [
            "schedule",
            None,
            None,
            "Module (or module:attribute) defining the Schedule that txmsg-scheduler "
            "runs, for the schedule page.",
        ],
        ["schedule-name", None, "default", "The schedule's name (as given to txmsg-scheduler)."],
        [
            "auth-file",
            None,
            None,
            "File of user:password lines; every request then needs HTTP basic credentials.",
        ],
        [
            "token-file",
            None,
            None,
            "File holding an access token (default: $" + TOKEN_ENV_VAR + "), accepted as "
            "the HTTP basic password of any user name.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["queues"] = []

    def opt_queue(self, name: str) -> None:
        """
        Always show this work queue (repeat for several; others are found
        from the workers' queues).
        """
        if not name:
            raise usage.UsageError("--queue needs a name")
        self["queues"].append(name)

    opt_q = opt_queue

    def postOptions(self) -> None:
        """
        Check the endpoint, URLs and credentials.
        """
        if self["health"] is not None:
            raise usage.UsageError("--health is for workers; the dashboard serves /metrics itself")
        self.post_ops_options()
        listen = loopback_by_default(self["listen"])
        try:
            serverFromString(None, listen)
        except Exception as e:
            raise usage.UsageError(
                "invalid --listen endpoint {!r}: {}".format(listen, e or type(e).__name__)
            ) from e
        self["listen"] = listen
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)
        self["management"] = self["management"] or os.environ.get(MANAGEMENT_ENV_VAR) or None
        if self["management"] is not None and not self["management"].startswith(
            ("http://", "https://")
        ):
            raise usage.UsageError(
                "--management must be http(s)://user:password@host:15672/, not {!r}".format(
                    self["management"].split("@")[-1]
                )
            )
        if self["schedule"] is not None:
            from txmsg.schedule.entries import load_schedule

            self["schedule"] = load_user_object(load_schedule, self["schedule"], "--schedule")
        self["checkers"] = self._checkers()
        if not self["checkers"] and not is_loopback_endpoint(listen):
            raise usage.UsageError(
                "--listen {} is reachable from other machines: give --auth-file or a token "
                "(--token-file or ${}), preferably over an ssl: endpoint".format(
                    listen, TOKEN_ENV_VAR
                )
            )
        self["insecure"] = bool(
            self["checkers"] and not is_loopback_endpoint(listen) and not is_tls_endpoint(listen)
        )

    def _checkers(self) -> list[Any]:
        checkers: list[Any] = []
        if self["auth-file"]:
            try:
                checkers.append(read_auth_file(self["auth-file"]))
            except ValueError as e:
                raise usage.UsageError(str(e)) from None
        token = None
        if self["token-file"]:
            try:
                with open(self["token-file"], encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as e:
                raise usage.UsageError(
                    "cannot read --token-file {}: {}".format(self["token-file"], e.strerror)
                ) from None
        else:
            token = os.environ.get(TOKEN_ENV_VAR, "").strip() or None
        if token is not None:
            if len(token) < 16:
                raise usage.UsageError("the dashboard token must be at least 16 characters")
            checkers.append(TokenChecker(token))
        return checkers


def makeService(options: Options, reactor: IReactorTime | None = None) -> Any:
    """
    Build the dashboard.
    """
    service = DashboardService(
        options["listen"],
        amqp_url=options["amqp"],
        redis_url=options["redis"],
        management_url=options["management"],
        queues=options["queues"],
        interval=options["interval"],
        history=options["history"],
        read_only=bool(options["read-only"]),
        checkers=options["checkers"],
        schedule=options["schedule"],
        schedule_name=options["schedule-name"],
        reactor=reactor,
    )
    if options["insecure"]:
        service.log.warn(
            "txmsg dashboard: credentials travel in clear text on {listen}; use an ssl: endpoint",
            listen=options["listen"],
        )
    return service
