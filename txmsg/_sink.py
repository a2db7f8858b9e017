# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Sending to an event sink (an L{txmsg.events.EventRegistry} or anything with
its C{dispatch(name, payload, source=...)}), in one place: nothing happens
without a sink, and a failing sink is logged, never raised into the caller.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txmsg.events._model import IEventSink

__all__ = ["send_event"]


def send_event(
    events: IEventSink | None, name: str, payload: Any, source: str, log: Logger
) -> None:
    """
    Dispatch C{name} with C{payload} to C{events} if there is a sink.

    @param events: the sink, or L{None} for none.
    @param name: the event name.
    @param payload: the event payload.
    @param source: the event's C{source}.
    @param log: where a sink failure (raised, or a failed Deferred) is logged.
    """
    if events is None:
        return
    try:
        d = events.dispatch(name, payload, source=source)
    except Exception:
        log.failure("Event sink failed to take {event}", event=name)
        return
    if isinstance(d, Deferred):
        d.addErrback(lambda f: log.failure("Event {event} failed", f, event=name))
