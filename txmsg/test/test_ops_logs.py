# -*- test-case-name: txmsg.test.test_ops_logs -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ops.logs}: JSON lines, the redacting text observer and
redaction itself.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops import logs
from txmsg.ops.logs import (
    JSONLinesObserver,
    event_as_json,
    observer_factory,
    redact_text,
    redacting_text_observer,
    twistd_logger,
)

SECRET = "s3cr3t-Pa55"
URL = f"amqp://worker:{SECRET}@rabbit.example:5672/prod"
REDACTED = "amqp://worker:***@rabbit.example:5672/prod"


def _logged(observer: Any) -> Logger:
    publisher = LogPublisher(observer)
    return Logger(namespace="txmsg.test", observer=publisher)


class RedactTextTests(SynchronousTestCase):
    """
    L{redact_text}.
    """

    def test_urls_in_text(self) -> None:
        """
        Every URL with a password in a text is redacted, whatever surrounds
        it; text without one is unchanged.
        """
        text = f"to {URL} and 'redis://:{SECRET}@cache:6379/0', then https://example.com/x"
        self.assertEqual(
            redact_text(text),
            f"to {REDACTED} and 'redis://:***@cache:6379/0', then https://example.com/x",
        )
        self.assertEqual(redact_text("no url here"), "no url here")


class JSONLinesObserverTests(SynchronousTestCase):
    """
    L{JSONLinesObserver} and L{event_as_json}.
    """

    def lines(self, out: io.StringIO) -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def test_one_line_per_event(self) -> None:
        """
        Each event is one JSON object on its own line with time, level,
        namespace, the formatted message, the format and the structured
        fields; values that are not JSON become their repr.
        """
        out = io.StringIO()
        log = _logged(JSONLinesObserver(out))
        log.info(
            "Consuming {queue} (prefetch {prefetch})",
            queue="tasks",
            prefetch=2,
            thing=object,
        )
        log.warn("multi\nline")
        first, second = self.lines(out)
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["namespace"], "txmsg.test")
        self.assertEqual(first["message"], "Consuming tasks (prefetch 2)")
        self.assertEqual(first["format"], "Consuming {queue} (prefetch {prefetch})")
        self.assertEqual(first["fields"], {"queue": "tasks", "prefetch": 2, "thing": repr(object)})
        self.assertTrue(first["time"].endswith("Z"))
        self.assertIsInstance(first["timestamp"], float)
        self.assertEqual((second["level"], second["message"]), ("warn", "multi\nline"))

    def test_failure(self) -> None:
        """
        A failure adds its type, message and traceback.
        """
        out = io.StringIO()
        log = _logged(JSONLinesObserver(out))
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.failure("It broke")
        [line] = self.lines(out)
        self.assertEqual(line["level"], "critical")
        self.assertEqual(line["failure"]["type"], "ZeroDivisionError")
        self.assertIn("ZeroDivisionError", line["failure"]["traceback"])

    def test_no_secret_anywhere(self) -> None:
        """
        A password in a URL never reaches a JSON line: not from a field, a
        nested field, the format string, the formatted message or a
        failure's message and traceback.
        """
        out = io.StringIO()
        log = _logged(JSONLinesObserver(out))
        log.info("Connecting to {url}", url=URL, nested={"urls": [URL, URL.encode()]})
        log.info("Connecting to " + URL)  # a URL baked into the format string
        log.failure("Lost", Failure(ConnectionError("cannot reach " + URL)))
        text = out.getvalue()
        self.assertNotIn(SECRET, text)
        first, second, third = self.lines(out)
        self.assertEqual(first["message"], "Connecting to " + REDACTED)
        self.assertEqual(first["fields"]["url"], REDACTED)
        self.assertEqual(first["fields"]["nested"], {"urls": [REDACTED, REDACTED]})
        self.assertEqual((second["message"], second["format"]), ("Connecting to " + REDACTED,) * 2)
        self.assertEqual(third["failure"]["message"], "cannot reach " + REDACTED)

    def test_legacy_event(self) -> None:
        """
        A twisted.python.log event keeps its text as the message, without
        the legacy keys in the fields.
        """
        line = json.loads(
            event_as_json(
                {
                    "message": ("hello " + URL,),
                    "isError": 0,
                    "system": "-",
                    "time": 1.5,
                    "log_format": "{log_text}",
                    "log_text": "hello " + URL,
                    "log_level": LogLevel.info,
                    "log_time": 1.5,
                    "log_system": "-",
                }
            )
        )
        self.assertEqual(line["message"], "hello " + REDACTED)
        self.assertEqual(line["time"], "1970-01-01T00:00:01.500000Z")
        self.assertNotIn("fields", line)

    def test_bytes_file(self) -> None:
        """
        A file opened in binary mode gets UTF-8.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            _logged(JSONLinesObserver(f)).info("caf\u00e9")
        with open(path, "rb") as f:
            self.assertEqual(json.loads(f.read().decode("utf-8"))["message"], "caf\u00e9")


class TextObserverTests(SynchronousTestCase):
    """
    L{redacting_text_observer}.
    """

    def test_redacted_classic_text(self) -> None:
        """
        Lines look like twistd's and carry no password, tracebacks included.
        """
        out = io.StringIO()
        log = _logged(redacting_text_observer(out, None))
        log.info("Connecting to {url}", url=URL)
        log.failure("Lost", Failure(ConnectionError("cannot reach " + URL)))
        text = out.getvalue()
        self.assertNotIn(SECRET, text)
        self.assertTrue(text.startswith("- [txmsg.test#info] Connecting to " + REDACTED + "\n"))
        self.assertIn("cannot reach " + REDACTED, text)


class ObserverFactoryTests(SynchronousTestCase):
    """
    L{observer_factory} and the twistd hooks.
    """

    def setUp(self) -> None:
        saved = dict(logs._twistd_destination)
        self.addCleanup(logs._twistd_destination.update, saved)

    def test_file(self) -> None:
        """
        With a log file, events go there (JSON or text).
        """
        path = self.mktemp()
        observer = observer_factory("json", path, nodaemon=False)()
        _logged(observer).info("to {url}", url=URL)
        observer._out.close()
        with open(path) as f:
            self.assertEqual(json.loads(f.read())["message"], "to " + REDACTED)

    def test_default_file_when_daemon(self) -> None:
        """
        A daemon without C{--logfile} logs to C{twistd.log} like twistd.
        """
        here = os.getcwd()
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        os.chdir(directory)
        self.addCleanup(os.chdir, here)
        observer = observer_factory("text", None, nodaemon=False)()
        _logged(observer).info("hello")
        observer._outFile.close()
        with open(os.path.join(directory, "twistd.log")) as f:
            self.assertIn("hello", f.read())

    def test_bad_format(self) -> None:
        """
        Only json and text exist.
        """
        self.assertRaises(ValueError, observer_factory, "xml")

    def test_twistd_logger(self) -> None:
        """
        L{twistd_logger} names a factory twistd can import, writing where
        twistd was told to.
        """
        path = self.mktemp()
        name = twistd_logger("json", path, False)
        self.assertEqual(name, "txmsg.ops.logs.twistd_json_observer")
        observer = namedAny(name)()
        self.assertIsInstance(observer, JSONLinesObserver)
        observer._out.close()
        self.assertTrue(os.path.exists(path))
        self.assertEqual(twistd_logger("text", "-", True), "txmsg.ops.logs.twistd_text_observer")
