# -*- test-case-name: txmsg.test.test_ops_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The C{--health} and C{--log-format} options shared by the twistd plugins.

    class Options(OpsOptions):
        def postOptions(self):
            self.post_ops_options()
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from txmsg._coerce import choice
from txmsg._endpoints import loopback_by_default
from txmsg._options import TwistdPluginOptions
from txmsg.ops.logs import twistd_logger

__all__ = ["LOG_FORMATS", "OpsOptions"]

LOG_FORMATS = ("text", "json")


class OpsOptions(TwistdPluginOptions):
    """
    A base for plugin options: C{--health ENDPOINT} (off by default; TCP
    endpoints without C{interface=} listen on loopback only) and
    C{--log-format text|json} (both redact URL passwords).
    """

    optParameters = [
        [
            "health",
            None,
            None,
            "Serve /live, /ready and /metrics on this endpoint, e.g. tcp:8081 "
            "(loopback unless interface= says otherwise). Default: off.",
        ],
        [
            "log-format",
            None,
            "text",
            "Log as text or json (one JSON object per line).",
            choice("log-format", *LOG_FORMATS),
        ],
    ]

    def post_ops_options(self) -> None:
        """
        Validate C{--health} and C{--log-format}; under twistd, make twistd
        log through the redacting observer of the chosen format (unless
        twistd's own C{--logger} or C{--syslog} was given).

        @raise usage.UsageError: for a bad endpoint or format.
        """
        health = self["health"]
        if health is not None:
            health = loopback_by_default(health)
            try:
                serverFromString(None, health)
            except Exception as e:
                raise usage.UsageError(
                    f"invalid --health endpoint {health!r}: {e or type(e).__name__}"
                ) from e
            self["health"] = health
        log_format = self["log-format"]
        self._install_logger(getattr(self, "parent", None), log_format)

    def _install_logger(self, parent: Any, log_format: str) -> None:
        if parent is None or not hasattr(parent, "get"):
            return
        if parent.get("logger") or parent.get("syslog"):
            if log_format == "json":
                raise usage.UsageError(
                    "--log-format json cannot be combined with twistd --logger or --syslog"
                )
            return
        parent["logger"] = twistd_logger(
            log_format, parent.get("logfile"), bool(parent.get("nodaemon"))
        )
