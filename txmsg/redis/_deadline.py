# -*- test-case-name: txmsg.test.test_redis_deadline -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A deadline on every txredisapi command.

txredisapi (1.6.0, C{reconnect=True}) lets a command issued while Redis is down
wait for the next connection, however long that takes; C{replyTimeout} only
starts once the command is written.  L{DeadlineProxy} wraps a txredisapi
handler (or a transaction/pipeline connection) and adds a deadline to the
Deferred of every method call, so the caller always hears back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["DeadlineProxy", "RedisCommandTimeout"]

# Commands that take a connection out of the pool and only give it back when
# the caller finishes the transaction/pipeline.  Cancelling them half-way
# would leak the connection, so their deadline races them instead and a late
# result is released.
_RESERVING = frozenset({"multi", "watch", "pipeline"})
# Blocking pops: their own server-side timeout is added to the deadline.
_BLOCKING = {"blpop": 1, "brpop": 1, "brpoplpush": 2}
# Methods that are not Redis commands.
_PLAIN = frozenset({"disconnect"})


class RedisCommandTimeout(Exception):
    """
    A Redis command got no reply within its deadline (Redis down, unreachable
    or too slow).  The command may or may not have been executed.
    """


def _check_args(name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """
    Refuse the argument types txredisapi silently mangles; floats are sent
    with C{repr} (full precision) instead of C{"%f"}.
    """
    out = None
    for i, arg in enumerate(args):
        if arg is None or arg is True or arg is False:
            raise TypeError(
                f"refusing to send {arg!r} as argument {i + 1} of Redis "
                f"command {name}: "
                f"txredisapi would store the text {str(arg)!r}; serialize it "
                "explicitly"
            )
        if type(arg) is float:
            if out is None:
                out = list(args)
            out[i] = repr(arg)
    return args if out is None else tuple(out)


class DeadlineProxy:
    """
    Call-through proxy adding a deadline to every command of a txredisapi
    handler or connection.

    C{proxy.get("k")} calls C{target.get("k")} and returns a Deferred that
    fails with L{RedisCommandTimeout} after C{timeout} seconds; the inner
    command is cancelled.  Blocking pops (C{blpop}, C{brpop}, C{brpoplpush})
    get their own timeout added (no deadline when that is 0: wait forever was
    asked for).  C{multi}, C{watch} and C{pipeline} are raced rather than
    cancelled, and a transaction that arrives after its deadline is discarded
    so its pooled connection is not leaked; the transaction connection they
    return is itself wrapped.  Commands queued in a pipeline get no deadline
    of their own: C{execute_pipeline()} has it.

    Top-level arguments that txredisapi would silently corrupt are refused
    (C{None}, C{True}, C{False}: C{TypeError}) or fixed (C{float}: sent with
    C{repr}, not C{"%f"}).

    @ivar target: the wrapped object.
    """

    log = Logger()

    def __init__(
        self,
        target: Any,
        timeout: float,
        clock: IReactorTime,
        describe: Callable[[], str] = lambda: "",
    ) -> None:
        """
        @param target: a txredisapi C{ConnectionHandler} or protocol.
        @param timeout: seconds per command; C{None} or <= 0 disables.
        @param clock: schedules the deadlines.
        @param describe: returns a short state text added to timeout errors
            (e.g. the redacted URL and whether it is connected).
        """
        self.target = target
        self._timeout = timeout
        self._clock = clock
        self._describe = describe

    def __repr__(self) -> str:
        return f"<DeadlineProxy {self._timeout}s for {self.target!r}>"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if name.startswith("_") or name in _PLAIN or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            args = _check_args(name, args)
            result = attr(*args, **kwargs)
            if not isinstance(result, Deferred):
                return result
            # (a txredisapi handler answers any attribute with a function,
            # so look at the instance's own pipelining flag only)
            pipelining = getattr(self.target, "__dict__", {}).get("pipelining")
            if pipelining and name != "execute_pipeline":
                return result
            timeout = self._timeout
            if name in _BLOCKING:
                own = kwargs.get("timeout")
                if own is None and len(args) > _BLOCKING[name]:
                    own = args[_BLOCKING[name]]
                if not own:
                    return result
                timeout = timeout + float(own)
            if not timeout or timeout <= 0:
                return result
            if name in _RESERVING:
                return self._race(name, result, timeout)
            return self._limit(name, result, timeout)

        return call

    def _error(self, name: str, timeout: float) -> RedisCommandTimeout:
        state = self._describe()
        return RedisCommandTimeout(
            "Redis command {} got no reply within {:g} s{}".format(
                name.upper(), timeout, f" ({state})" if state else ""
            )
        )

    def _limit(self, name: str, d: Deferred[Any], timeout: float) -> Deferred[Any]:
        def timedOut(result: Any, _timeout: float) -> Any:
            if isinstance(result, Failure) and result.check(CancelledError):
                raise self._error(name, timeout)
            return result

        return d.addTimeout(timeout, self._clock, onTimeoutCancel=timedOut)

    def _race(self, name: str, d: Deferred[Any], timeout: float) -> Deferred[Any]:
        out: Deferred[Any] = Deferred()

        def expire() -> None:
            out.errback(self._error(name, timeout))

        call = self._clock.callLater(timeout, expire)

        def arrived(result: Any) -> None:
            if not out.called:
                call.cancel()
                if isinstance(result, Failure):
                    out.errback(result)
                else:
                    out.callback(DeadlineProxy(result, self._timeout, self._clock, self._describe))
                return None
            if not isinstance(result, Failure):
                _release(name, result)
            return None

        d.addBoth(arrived)
        return out


def _release(name: str, conn: Any) -> None:
    """
    Give back a transaction/pipeline connection whose caller gave up.
    """
    try:
        if name == "pipeline":
            conn._clear_pipeline_state(None)
        elif name == "watch":
            conn.unwatch().addErrback(lambda f: None)
        else:
            conn.discard().addErrback(lambda f: None)
    except Exception:
        DeadlineProxy.log.failure("Could not release a late Redis {name}", name=name)
