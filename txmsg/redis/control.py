# -*- test-case-name: txmsg.test.test_redis_control -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker control channel, compatible with RQ.

A worker named C{NAME} listens on the Redis channel C{rq:pubsub:NAME} for JSON
commands, exactly as RQ workers do, so RQ's own
C{rq.command.send_shutdown_command(redis, NAME)} (and C{send_kill_horse_command},
C{send_command(redis, NAME, "stop-job", job_id=...)}) work against it:

  - C{{"command": "shutdown"}}
  - C{{"command": "kill-horse"}}
  - C{{"command": "stop-job", "job_id": "..."}}
  - C{{"command": "stop-execution", "job_id": "...", "execution_id": "..."}}
    (RQ 2+)

txmsg adds commands with replies, and a reply to any command that names a
channel for it:

  - C{{"command": "ping", "reply_to": "CHANNEL", "id": "..."}}
  - C{{"command": "status", "reply_to": "CHANNEL", "id": "..."}}

A reply is a JSON object published on C{reply_to}:
C{{"id": ..., "command": ..., "ok": true, "result": ...}} or
C{{"id": ..., "command": ..., "ok": false, "error": {"type": ..., "message": ...}}}.
Unknown and malformed commands are logged and otherwise ignored (an unknown
command that asked for a reply gets an error reply).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor
from txmsg.redis._delivery import Message, Subscription
from txmsg.redis.pubsub import publish

__all__ = [
    "CHANNEL_TEMPLATE",
    "REPLY_COMMANDS",
    "ControlCommand",
    "ControlListener",
    "ControlTimeout",
    "MalformedCommand",
    "parse_command",
    "send_control",
]

#: The channel of worker C{NAME} (RQ's C{PUBSUB_CHANNEL_TEMPLATE}).
CHANNEL_TEMPLATE = "rq:pubsub:%s"
#: Commands that only make sense with a reply.
REPLY_COMMANDS = frozenset({"ping", "status"})
#: Arguments each RQ command requires.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "stop-job": ("job_id",),
    "stop-execution": ("job_id", "execution_id"),
}


class MalformedCommand(ValueError):
    """
    A control message is not a JSON object with a string C{"command"} and the
    arguments that command requires.
    """


class ControlTimeout(Exception):
    """
    No reply to a control command arrived in time (is the worker running?).
    """


@dataclass(frozen=True)
class ControlCommand:
    """
    A parsed control command.

    @ivar command: e.g. C{"shutdown"}, C{"stop-job"}, C{"ping"}.
    @ivar args: every other field of the JSON object (C{job_id}, ...).
    @ivar reply_to: the channel to publish the reply on, or C{None}.
    @ivar id: the caller's id, echoed in the reply.
    """

    command: str
    args: Mapping[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    id: str | None = None


def parse_command(raw: bytes | str) -> ControlCommand:
    """
    Parse one control message.

    @raise MalformedCommand: not JSON, not an object, no string C{command},
        a required argument missing or not a string, a non-string C{reply_to}.
    """
    try:
        payload = json.loads(raw)
    except (TypeError, ValueError) as e:
        raise MalformedCommand(f"not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise MalformedCommand("not a JSON object")
    command = payload.pop("command", None)
    if not isinstance(command, str) or not command:
        raise MalformedCommand("no 'command' string")
    reply_to = payload.pop("reply_to", None)
    if reply_to is not None and not isinstance(reply_to, str):
        raise MalformedCommand("'reply_to' must be a string")
    ident = payload.pop("id", None)
    if ident is not None:
        ident = str(ident)
    for name in _REQUIRED.get(command, ()):
        if not isinstance(payload.get(name), str) or not payload[name]:
            raise MalformedCommand(f"{command!r} needs a string {name!r}")
    return ControlCommand(command, payload, reply_to, ident)


Handler = Callable[[ControlCommand], Any]


class ControlListener(Service):
    """
    Listen on C{rq:pubsub:<name>} and dispatch commands to handlers.

    @ivar worker_name: the worker name.
    @ivar channel: the channel listened on.
    @ivar stats: counters C{handled}, C{malformed}, C{unknown}, C{failed}.

    Handlers take the L{ControlCommand} and may return a value or a Deferred
    (the reply's C{result}, when a reply was asked for).  C{ping} is built
    in; C{status} is built in when a C{status} callable is given.
    """

    log = Logger()

    def __init__(
        self,
        name: str,
        pubsub: Any,
        connection: Any,
        handlers: Mapping[str, Handler] | None = None,
        *,
        status: Callable[[], Any] | None = None,
    ) -> None:
        """
        @param name: the worker name; the channel is C{rq:pubsub:<name>}.
        @param pubsub: the L{txmsg.redis.PubSub} to listen with.
        @param connection: a L{txmsg.redis.RedisConnection} for replies.
        @param handlers: command name -> handler (C{"shutdown"},
            C{"stop-job"}, C{"kill-horse"}, C{"stop-execution"}, your own).
        @param status: returns the C{status} reply's result (JSON-able).
        """
        self.worker_name = name
        self.channel = CHANNEL_TEMPLATE % name
        self.pubsub = pubsub
        self.connection = connection
        self.stats = {"handled": 0, "malformed": 0, "unknown": 0, "failed": 0}
        self._handlers: dict[str, Handler] = {"ping": self._ping}
        if status is not None:
            self._handlers["status"] = lambda cmd: status()
        for command, handler in (handlers or {}).items():
            self.register(command, handler)
        self._sub: Subscription | None = None

    def register(self, command: str, handler: Handler) -> None:
        """
        Handle C{command} with C{handler} (replacing any previous one).
        """
        if not callable(handler):
            raise TypeError(f"handler for {command!r} is not callable")
        self._handlers[command] = handler

    def _ping(self, command: ControlCommand) -> dict[str, Any]:
        return {
            "pong": True,
            "name": self.worker_name,
            "pid": os.getpid(),
            "time": time.time(),
        }

    def startService(self) -> None:
        """
        Subscribe to the control channel.
        """
        super().startService()
        self._sub = self.pubsub.subscribe(self.channel, self.handle_message)
        self.log.info("Listening for control commands on {channel}", channel=self.channel)

    def stopService(self) -> None:
        """
        Unsubscribe.
        """
        super().stopService()
        if self._sub is not None:
            self._sub.cancel()
            self._sub = None

    def when_active(self) -> Deferred[Any]:
        """
        Fire once Redis confirmed the control-channel subscription.
        """
        if self._sub is None:
            raise RuntimeError("ControlListener is not running")
        return self._sub.when_active()

    def handle_message(self, message: Message) -> Deferred[None] | None:
        """
        Parse and dispatch one control message (the subscription callback).
        """
        try:
            command = parse_command(message.raw)
        except MalformedCommand as e:
            self.stats["malformed"] += 1
            self.log.warn(
                "Ignoring malformed control message on {channel}: {error}",
                channel=self.channel,
                error=str(e),
            )
            return None
        handler = self._handlers.get(command.command)
        if handler is None:
            self.stats["unknown"] += 1
            self.log.warn(
                "Ignoring unknown control command {command!r} on {channel}",
                command=command.command,
                channel=self.channel,
            )
            if command.reply_to:
                return self._reply(
                    command,
                    False,
                    {
                        "type": "UnknownCommand",
                        "message": "unknown command " + repr(command.command),
                    },
                )
            return None
        if command.command in REPLY_COMMANDS and not command.reply_to:
            self.log.warn("Ignoring {command!r} without reply_to", command=command.command)
            return None
        self.log.info("Control command {command} received", command=command.command)
        d = maybeDeferred(handler, command)
        d.addCallbacks(self._succeeded, self._failed, (command,), {}, (command,))
        return d

    def _succeeded(self, result: Any, command: ControlCommand) -> Any:
        self.stats["handled"] += 1
        if command.reply_to:
            return self._reply(command, True, result)
        return None

    def _failed(self, failure: Failure, command: ControlCommand) -> Any:
        self.stats["failed"] += 1
        self.log.failure("Control command {command} failed", failure, command=command.command)
        if command.reply_to:
            error = {
                "type": type(failure.value).__name__,
                "message": failure.getErrorMessage(),
            }
            return self._reply(command, False, error)
        return None

    def _reply(self, command: ControlCommand, ok: bool, value: Any) -> Deferred[None]:
        body: dict[str, Any] = {"id": command.id, "command": command.command, "ok": ok}
        body["result" if ok else "error"] = value
        try:
            payload = json.dumps(body, default=repr)
        except (TypeError, ValueError) as e:  # pragma: no cover - default=repr
            payload = json.dumps({"id": command.id, "ok": False, "error": {"message": str(e)}})
        assert command.reply_to is not None
        d = publish(self.connection, command.reply_to, payload)
        d.addErrback(lambda f: self.log.failure("Could not send control reply", f))
        return d.addCallback(lambda _: None)


async def _send(
    connection: Any,
    pubsub: Any,
    name: str,
    command: str,
    args: Mapping[str, Any],
    wait_reply: bool,
    timeout: float,
    clock: IReactorTime,
) -> Any:
    payload: dict[str, Any] = {"command": command}
    payload.update(args)
    channel = CHANNEL_TEMPLATE % name
    if not wait_reply:
        return await publish(connection, channel, json.dumps(payload))
    ident = uuid.uuid4().hex
    reply_channel = "txmsg:control:reply:" + ident
    got: Deferred[Any] = Deferred()

    def on_reply(message: Message) -> None:
        data = message.data
        if isinstance(data, dict) and data.get("id") == ident and not got.called:
            got.callback(data)

    sub = pubsub.subscribe(reply_channel, on_reply, decode="json")
    try:
        try:
            await sub.when_active().addTimeout(timeout, clock)
        except defer.TimeoutError:
            raise ControlTimeout(
                f"Redis did not confirm the reply subscription within {timeout:g} s"
            ) from None
        payload.update({"reply_to": reply_channel, "id": ident})
        receivers = await publish(connection, channel, json.dumps(payload))
        if not receivers:
            raise ControlTimeout(f"nobody is listening on {channel}")
        got.addTimeout(timeout, clock)
        try:
            return await got
        except Exception as e:
            if isinstance(e, ControlTimeout):
                raise
            raise ControlTimeout(
                f"no reply to {command!r} from {channel} within {timeout:g} s"
            ) from None
    finally:
        sub.cancel()


def send_control(
    connection: Any,
    pubsub: Any,
    name: str,
    command: str,
    args: Mapping[str, Any] | None = None,
    *,
    wait_reply: bool | None = None,
    timeout: float = 5.0,
    clock: IReactorTime | None = None,
) -> Deferred[Any]:
    """
    Send a control command to worker C{name}.

    Without a reply, fires with the number of listeners that received it
    (0: nobody listens).  With one (C{ping}, C{status}, or C{wait_reply=True}),
    fires with the reply object, or fails with L{ControlTimeout}.

    @param connection: a L{txmsg.redis.RedisConnection} (publishes).
    @param pubsub: a running L{txmsg.redis.PubSub} (receives the reply).
    @param args: extra fields, e.g. C{{"job_id": "..."}}.
    @param wait_reply: default: only for C{ping} and C{status}.
    @param timeout: seconds for the subscription, and again for the reply.
    """
    if wait_reply is None:
        wait_reply = command in REPLY_COMMANDS
    clock = maybe_global_reactor(clock)
    return Deferred.fromCoroutine(
        _send(
            connection,
            pubsub,
            name,
            command,
            dict(args or {}),
            wait_reply,
            timeout,
            clock,
        )
    )
