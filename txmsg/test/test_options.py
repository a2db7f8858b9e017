# -*- test-case-name: txmsg.test.test_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg._options} (one-line usage errors, txmsg's C{--version})
and L{txmsg._coerce} (option coercers).
"""

from __future__ import annotations

import io
import sys
from typing import Any, cast

from twisted.python.usage import UsageError
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

import txmsg
from txmsg import _coerce
from txmsg._options import GnuOptions, TwistdPluginOptions, usage_error_line
from txmsg.tap import echo as echo_tap
from txmsg.tap import worker as worker_tap


class UsageErrorLineTests(SynchronousTestCase):
    """
    Tests for L{usage_error_line}.
    """

    def test_error_first_then_help(self) -> None:
        """
        The line names the command, says what is wrong, then points to the
        command's C{--help}.
        """
        self.assertEqual(
            usage_error_line("txmsg send", UsageError("Wrong number of arguments.")),
            "txmsg send: error: Wrong number of arguments; see 'txmsg send --help'",
        )

    def test_coercer_prefix_dropped(self) -> None:
        """
        usage.Options' "Parameter type enforcement failed" prefix is dropped:
        the coercer's message names the option itself.
        """
        error = UsageError("Parameter type enforcement failed: --count must be positive")
        self.assertEqual(
            usage_error_line("txmsg send", error),
            "txmsg send: error: --count must be positive; see 'txmsg send --help'",
        )

    def test_one_line(self) -> None:
        """
        A message spanning lines is folded into one.
        """
        line = usage_error_line("x", UsageError("a\nb"))
        self.assertNotIn("\n", line)


class TwistdPluginOptionsTests(SynchronousTestCase):
    """
    Tests for L{TwistdPluginOptions}: both plugins' usage errors under twistd.
    """

    def setUp(self) -> None:
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)

    def test_under_twistd(self) -> None:
        """
        Parsed as a twistd subcommand, a usage error prints one line (not
        twistd's help text) and exits 2.
        """
        for name, args, message in [
            ("txmsg-echo", ["--max-connections", "x"], "--max-connections must be"),
            ("txmsg-worker", ["--amqp", "notaurl"], "--amqp: invalid AMQP URL notaurl"),
            ("txmsg-worker", ["--tasks", "t", "--redis", "notaurl"], "--redis: unsupported"),
        ]:
            self.err.seek(0)
            self.err.truncate()
            options = ServerOptions()
            e = self.assertRaises(
                SystemExit, options.parseOptions, ["-n", "--pidfile=", name, *args]
            )
            self.assertEqual(e.code, 2)
            lines = self.err.getvalue().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith("twistd {}: error: ".format(name)), lines)
            self.assertIn(message, lines[0])
            self.assertTrue(lines[0].endswith("see 'twistd {} --help'".format(name)))

    def test_not_under_twistd(self) -> None:
        """
        Parsed on their own, the options raise L{UsageError} as usual.
        """
        self.assertRaises(UsageError, echo_tap.Options().parseOptions, ["--max-connections", "x"])
        self.assertEqual(self.err.getvalue(), "")

    def test_version(self) -> None:
        """
        C{--version} prints txmsg's version, for twistd plugins and txmsg
        subcommands alike.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        for options in (TwistdPluginOptions(), GnuOptions()):
            out.seek(0)
            out.truncate()
            e = self.assertRaises(SystemExit, options.parseOptions, ["--version"])
            self.assertEqual(e.code, 0)
            self.assertEqual(out.getvalue(), "txmsg {}\n".format(txmsg.__version__))


class CoercerTests(SynchronousTestCase):
    """
    Tests for the coercers of L{txmsg._coerce}.
    """

    def test_whole_number(self) -> None:
        """
        L{_coerce.whole_number} converts to C{int} and names the option and
        the bound when the value is not a whole number or too small.
        """
        coerce = _coerce.whole_number("prefetch", 1)
        self.assertEqual(coerce("3"), 3)
        e = self.assertRaises(ValueError, coerce, "x")
        self.assertEqual(str(e), "--prefetch must be a whole number at least 1, not 'x'")
        e = self.assertRaises(ValueError, coerce, "0")
        self.assertEqual(str(e), "--prefetch must be at least 1, not 0")
        self.assertEqual(cast(Any, coerce).coerceDoc, "Must be a whole number at least 1.")

    def test_seconds(self) -> None:
        """
        L{_coerce.seconds} converts to C{float}; with C{above} the bound
        itself is refused.
        """
        coerce = _coerce.seconds("timeout", 0, above=True)
        self.assertEqual(coerce("2.5"), 2.5)
        self.assertRaises(ValueError, coerce, "0")
        self.assertRaises(ValueError, coerce, "nan")
        self.assertEqual(_coerce.seconds("grace")("0"), 0.0)

    def test_choice(self) -> None:
        """
        L{_coerce.choice} accepts only the listed words.
        """
        coerce = _coerce.choice("queue-type", "classic", "quorum")
        self.assertEqual(coerce("quorum"), "quorum")
        e = self.assertRaises(ValueError, coerce, "stream")
        self.assertEqual(str(e), "--queue-type must be classic or quorum, not 'stream'")

    def test_amqp_url(self) -> None:
        """
        A bad AMQP URL names the option, the problem and the expected form,
        without the password.
        """
        coerce = _coerce.amqp_url_option()
        self.assertEqual(coerce("amqp://h/"), "amqp://h/")
        e = self.assertRaises(ValueError, coerce, "amqp://u:secret@host:abc/")
        self.assertIn("--amqp: invalid AMQP URL amqp://u:***@host:abc/", str(e))
        self.assertIn("expected amqp://", str(e))
        self.assertNotIn("secret", str(e))

    def test_redis_url(self) -> None:
        """
        A bad Redis URL names the option, the problem and the expected form.
        """
        e = self.assertRaises(ValueError, _coerce.redis_url_option(), "notaurl")
        self.assertTrue(str(e).startswith("--redis: unsupported Redis URL scheme"), str(e))
        self.assertIn("expected redis://", str(e))

    def test_url_from_environment(self) -> None:
        """
        L{_coerce.url_from_environment} prefers the option, falls back on
        the variable, and reports a bad variable as a usage error naming it.
        """
        check = _coerce.check_redis_url
        env = {"V": "redis://h:1/0"}
        self.assertEqual(
            _coerce.url_from_environment("redis://x/0", "V", check, env), "redis://x/0"
        )
        self.assertEqual(_coerce.url_from_environment(None, "V", check, env), "redis://h:1/0")
        self.assertIsNone(_coerce.url_from_environment(None, "V", check, {}))
        e = self.assertRaises(
            UsageError, _coerce.url_from_environment, None, "V", check, {"V": "bad"}
        )
        self.assertTrue(str(e).startswith("$V: "), str(e))

    def test_worker_environment(self) -> None:
        """
        C{twistd txmsg-worker} reports a bad C{$TXMSG_AMQP_URL} as a usage
        error.
        """
        self.patch(_coerce.os, "environ", {"TXMSG_AMQP_URL": "notaurl"})
        options = worker_tap.Options()
        e = self.assertRaises(
            UsageError, options.parseOptions, ["--tasks", "txmsg.test._worker_tasks_sample"]
        )
        self.assertIn("$TXMSG_AMQP_URL", str(e))
