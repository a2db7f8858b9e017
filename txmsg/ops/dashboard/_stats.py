# -*- test-case-name: txmsg.test.test_dashboard_sampler -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Where queue figures come from.

  - L{PassiveDeclareStats}: a passive C{queue.declare} per queue on one
    channel, over the AMQP connection the dashboard already has.  It needs
    no plugin and no extra permission, and tells ready messages and
    consumers (not unacked messages, and no rates).  A missing queue closes
    the channel (404); it is reported as missing and a new channel is used
    for the rest.
  - L{ManagementStats}: RabbitMQ's management HTTP API, when the plugin is
    enabled: one request lists every queue of the vhost with ready, unacked,
    consumers and publish/ack rates.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from twisted.internet.defer import Deferred

from txmsg._redact import redact_url

__all__ = ["ManagementStats", "PassiveDeclareStats", "QueueStats", "StatsUnavailable"]


class StatsUnavailable(Exception):
    """
    The figures could not be read (the message says why, without secrets).
    """


@dataclass(frozen=True)
class QueueStats:
    """
    What a source knows about one queue.
    """

    ready: int
    consumers: int
    unacked: int | None = None
    in_rate: float | None = None
    out_rate: float | None = None


class PassiveDeclareStats:
    """
    Queue figures from passive declares on an L{txmsg.amqp.AMQPConnection}.
    """

    lists_queues = False

    def __init__(self, amqp: Any) -> None:
        self.amqp = amqp

    async def sample(self, queues: Iterable[str]) -> dict[str, QueueStats | None]:
        """
        Figures of each named queue (L{None} for a missing one).

        @raise StatsUnavailable: when there is no connection.
        """
        result: dict[str, QueueStats | None] = {}
        channel = None
        try:
            for name in queues:
                if channel is None:
                    try:
                        channel = await self.amqp.open_channel()
                    except Exception as e:
                        raise StatsUnavailable("RabbitMQ: {}".format(e)) from None
                try:
                    frame = await channel.queue_declare(name, passive=True)
                except Exception:
                    result[name] = None
                    channel = None  # a 404 closed it
                    continue
                result[name] = QueueStats(
                    ready=int(frame.method.message_count),
                    consumers=int(frame.method.consumer_count),
                )
        finally:
            if channel is not None:
                try:
                    channel.close()
                except Exception:
                    pass
        return result


def _fetch_with_agent(reactor: Any) -> Callable[[str, dict[str, str]], Deferred[Any]]:
    from twisted.web.client import Agent, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor, connectTimeout=5)

    async def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        response = await agent.request(
            b"GET",
            url.encode("ascii"),
            Headers({k: [v] for k, v in headers.items()}),
        )
        body = await readBody(response)
        return response.code, body

    return lambda url, headers: Deferred.fromCoroutine(fetch(url, headers))


class ManagementStats:
    """
    Queue figures from the RabbitMQ management API.
    """

    lists_queues = True

    def __init__(
        self,
        url: str,
        vhost: str = "/",
        *,
        reactor: Any = None,
        fetch: Callable[[str, dict[str, str]], Deferred[Any]] | None = None,
    ) -> None:
        """
        @param url: the API's base URL with credentials,
            C{http://guest:guest@127.0.0.1:15672/}.
        @param vhost: the virtual host whose queues are listed.
        @param reactor: for the default HTTP client.
        @param fetch: C{fetch(url, headers)} firing with C{(code, body)}
            (default: a C{twisted.web.client.Agent}).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("management URL must be http(s)://user:password@host:port/")
        self.redacted = redact_url(url)
        netloc = parts.hostname + (":{}".format(parts.port) if parts.port else "")
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._url = "{}/api/queues/{}?columns=name,messages_ready,messages_unacknowledged,consumers,message_stats".format(
            base, quote(vhost, safe="")
        )
        user, password = parts.username or "guest", parts.password or "guest"
        self._headers = {
            "Authorization": "Basic "
            + base64.b64encode("{}:{}".format(user, password).encode("utf-8")).decode("ascii"),
            "Accept": "application/json",
        }
        if fetch is None:
            from txmsg._reactor import maybe_global_reactor

            fetch = _fetch_with_agent(maybe_global_reactor(reactor))
        self._fetch = fetch

    async def sample(self, queues: Iterable[str] = ()) -> dict[str, QueueStats | None]:
        """
        Figures of every queue of the vhost (those in C{queues} that do not
        exist are L{None}).

        @raise StatsUnavailable: when the API cannot be read.
        """
        try:
            code, body = await self._fetch(self._url, self._headers)
        except Exception as e:
            raise StatsUnavailable(
                "management API {}: {}".format(self.redacted, e or type(e).__name__)
            ) from None
        if code != 200:
            raise StatsUnavailable("management API {}: HTTP {}".format(self.redacted, code))
        try:
            rows = json.loads(body)
            if not isinstance(rows, list):
                raise ValueError("not a list")
        except ValueError as e:
            raise StatsUnavailable("management API {}: {}".format(self.redacted, e)) from None
        result: dict[str, QueueStats | None] = {name: None for name in queues}
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("name"), str):
                continue
            stats = row.get("message_stats") or {}
            result[row["name"]] = QueueStats(
                ready=int(row.get("messages_ready") or 0),
                unacked=int(row.get("messages_unacknowledged") or 0),
                consumers=int(row.get("consumers") or 0),
                in_rate=_rate(stats, "publish_details"),
                out_rate=_rate(stats, "ack_details"),
            )
        return result


def _rate(stats: Any, key: str) -> float | None:
    details = stats.get(key) if isinstance(stats, dict) else None
    if isinstance(details, dict) and isinstance(details.get("rate"), (int, float)):
        return float(details["rate"])
    return None
