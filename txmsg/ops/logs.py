# -*- test-case-name: txmsg.test.test_ops_logs -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Log observers for the twistd plugins: JSON lines for log shippers, and the
usual text; both redact every URL that carries a password.

A JSON line looks like::

    {"time": "2025-01-02T03:04:05.678901Z", "timestamp": 1735787045.678901,
     "level": "info", "namespace": "txmsg.amqp.connection.AMQPConnection",
     "message": "AMQP connection 1 to amqp://guest:***@127.0.0.1:5672/%2F is open",
     "fields": {"generation": 1, "url": "amqp://guest:***@127.0.0.1:5672/%2F"}}

C{fields} holds the event's structured fields (every key not starting with
C{log_}); values that are not JSON become their C{repr}.  A failure adds
C{"failure": {"type", "message", "traceback"}}.  Every string, the format
string, the message and the traceback are redacted.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from txmsg._redact import redact_url

__all__ = [
    "JSONLinesObserver",
    "event_as_json",
    "observer_factory",
    "redact_text",
    "redacting_text_observer",
    "twistd_json_observer",
    "twistd_logger",
    "twistd_text_observer",
]

# A scheme, "://", then everything up to whitespace, a quote or a bracket:
# enough to hold any user:password@ part.
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>`]+""")

# Legacy (twisted.python.log) keys that duplicate what the JSON line says.
_LEGACY_KEYS = frozenset(
    {
        "message",
        "isError",
        "system",
        "time",
        "format",
        "printed",
        "why",
        "failure",
        "logLevel",
    }
)

_MAX_DEPTH = 4


def redact_text(text: str) -> str:
    """
    Replace the password of every URL in C{text} with C{***}.

    @param text: any text (a log line, a format string, a field value).
    @return: the same text, each C{scheme://user:password@host} now
        C{scheme://user:***@host}.
    """
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def _plain(value: Any, depth: int = 0) -> Any:
    """
    A JSON-able, redacted copy of C{value}.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {redact_text(str(k)): _plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [_plain(v, depth + 1) for v in value]
    try:
        text = repr(value)
    except Exception as e:
        text = f"<unrepresentable {type(value).__name__}: {e}>"
    return redact_text(text)


def _iso(timestamp: float) -> str:
    seconds = int(timestamp)
    micros = int(round((timestamp - seconds) * 1_000_000))
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def event_as_json(event: LogEvent) -> str:
    """
    One log event as one line of JSON (no newline), redacted.
    """
    timestamp = event.get("log_time")
    if timestamp is None:
        timestamp = time.time()
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": _iso(timestamp),
        "timestamp": round(float(timestamp), 6),
        "level": getattr(level, "name", "info" if level is None else str(level)),
        "namespace": event.get("log_namespace", "-"),
        "message": redact_text(formatEvent(event)),
    }
    if "log_system" in event:
        record["system"] = _plain(event["log_system"])
    legacy = "isError" in event
    fields = {
        str(k): _plain(v)
        for k, v in event.items()
        if not str(k).startswith("log_") and not (legacy and k in _LEGACY_KEYS)
    }
    if fields:
        record["fields"] = fields
    if "log_format" in event and event["log_format"] is not None:
        record["format"] = redact_text(str(event["log_format"]))
    failure = event.get("log_failure")
    if failure is not None:
        try:
            traceback = failure.getTraceback()
            record["failure"] = {
                "type": getattr(failure.type, "__name__", str(failure.type)),
                "message": redact_text(failure.getErrorMessage()),
                "traceback": redact_text(traceback),
            }
        except Exception as e:
            record["failure"] = {
                "type": "unknown",
                "message": redact_text(repr(e)),
                "traceback": "",
            }
    return json.dumps(record, ensure_ascii=False, default=repr)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Write each event as one JSON object per line (see L{event_as_json}).
    """

    def __init__(self, out: IO[Any]) -> None:
        """
        @param out: a text file (or one taking bytes), flushed after each line.
        """
        self._out = out
        self._encode = "b" in getattr(out, "mode", "")

    def __call__(self, event: LogEvent) -> None:
        """
        Write C{event}; a line that cannot be written is dropped.
        """
        line = event_as_json(event) + "\n"
        self._out.write(line.encode("utf-8") if self._encode else line)
        self._out.flush()


def redacting_text_observer(
    out: IO[Any], time_format: str | None = timeFormatRFC3339
) -> FileLogObserver:
    """
    twistd's usual text format (C{textFileLogObserver}), with every URL
    password redacted from each line, tracebacks included.
    """

    def format_event(event: LogEvent) -> str | None:
        text = formatEventAsClassicLogText(event, formatTime=lambda t: formatTime(t, time_format))
        return None if text is None else redact_text(text)

    return FileLogObserver(out, format_event)


def observer_factory(
    log_format: str, logfile: str | None = None, nodaemon: bool = True
) -> Callable[[], Any]:
    """
    A log-observer factory for twistd's C{logger} option, writing where
    twistd would: standard output for C{-n} without C{--logfile} (or with
    C{--logfile=-}), else the named file (C{twistd.log} by default),
    rotated like twistd's own.

    @param log_format: C{"json"} or C{"text"}.
    """
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be json or text, not {log_format!r}")

    def factory() -> Any:
        if logfile == "-" or (nodaemon and not logfile):
            out: Any = sys.stdout
        else:
            out = LogFile.fromFullPath(logfile or "twistd.log")
        if log_format == "json":
            return JSONLinesObserver(out)
        return redacting_text_observer(out)

    return factory


# Where twistd would have logged: set by twistd_logger() while twistd parses
# its options, read when twistd calls the observer factory (twistd's
# "logger" option only takes the dotted name of a no-argument factory).
_twistd_destination: dict[str, Any] = {"logfile": None, "nodaemon": True}


def twistd_logger(log_format: str, logfile: str | None, nodaemon: bool) -> str:
    """
    Remember twistd's C{--logfile} and C{--nodaemon}, and return the dotted
    name of the observer factory for twistd's C{logger} option.

    @param log_format: C{"json"} or C{"text"}.
    """
    observer_factory(log_format)  # validates the format
    _twistd_destination.update(logfile=logfile, nodaemon=nodaemon)
    return f"{__name__}.twistd_{log_format}_observer"


def twistd_json_observer() -> Any:
    """
    The JSON-lines observer, writing where twistd would (see L{twistd_logger}).
    """
    return observer_factory("json", **_twistd_destination)()


def twistd_text_observer() -> Any:
    """
    The redacting text observer, writing where twistd would (see L{twistd_logger}).
    """
    return observer_factory("text", **_twistd_destination)()
