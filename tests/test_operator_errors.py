# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: each operator mistake prints one line naming the cause,
exits non-zero (2 for usage errors), never a traceback, never a password.
The commands run as subprocesses of the installed txmsg, as a user runs them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests._redis_support import RedisServer

BIN = os.path.dirname(sys.executable)
WORKER = ["--tasks", "txmsg.test._worker_tasks_sample"]
BAD_URLS = [
    ("--amqp", "notaurl", "invalid AMQP URL notaurl"),
    ("--amqp", "amqp://u:pw@host:abc/", "invalid AMQP URL amqp://u:***@host:abc/"),
    ("--redis", "notaurl", "unsupported Redis URL scheme"),
]
WRONG_AMQP = "amqp://guest:wrong-secret@127.0.0.1:5672/%2F"


def run(*argv: str, timeout: float = 60) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXMSG_")}
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run(
            [os.path.join(BIN, argv[0]), *argv[1:]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return r.stdout + r.stderr, r.returncode


class OperatorErrorTests(SynchronousTestCase):
    """
    The mistakes of issue 20 section 4, one subprocess each.
    """

    def assertOneLine(self, output: str, cause: str, secret: str = "") -> str:
        self.assertNotIn("Traceback", output)
        self.assertNotIn("Unhandled", output)
        lines = [line for line in output.splitlines() if cause in line]
        self.assertEqual(len(lines), 1, output)
        if secret:
            self.assertNotIn(secret, output)
        return lines[0]

    def test_bad_urls_on_subcommands(self) -> None:
        """
        A bad --amqp / --redis URL on a txmsg subcommand is a one-line
        usage error (exit 2) naming the option.
        """
        commands = {
            "--amqp": [["send", "add", "1"], ["dead-letters", "tasks"], ["info"]],
            "--redis": [["workers"], ["control", "w1", "ping"], ["info"]],
        }
        for option, url, cause in BAD_URLS:
            for sub in commands[option]:
                output, code = run("txmsg", *sub, option, url)
                self.assertEqual(code, 2, output)
                line = self.assertOneLine(output, cause, "pw@")
                self.assertIn(option + ":", line)
                self.assertIn("see 'txmsg {} --help'".format(sub[0]), line)
                self.assertEqual(len(output.splitlines()), 1, output)

    def test_bad_urls_on_worker(self) -> None:
        """
        The same on C{twistd txmsg-worker}: one line, exit 2, no help text.
        """
        for option, url, cause in BAD_URLS:
            output, code = run("twistd", "-n", "--pidfile=", "txmsg-worker", *WORKER, option, url)
            self.assertEqual(code, 2, output)
            self.assertOneLine(output, cause, "pw@")
            self.assertEqual(len(output.splitlines()), 1, output)

    def test_usage_error_is_one_line(self) -> None:
        """
        A usage error prints the error first, in one line, with a pointer
        to C{--help}, for txmsg and for twistd plugins.
        """
        output, code = run("txmsg", "send")
        self.assertEqual(
            (output, code),
            (
                "txmsg send: error: Wrong number of arguments; see 'txmsg send --help'\n",
                2,
            ),
        )
        output, code = run("twistd", "-n", "--pidfile=", "txmsg-echo", "--max-connections", "x")
        self.assertEqual(code, 2, output)
        self.assertEqual(len(output.splitlines()), 1, output)
        self.assertIn("--max-connections must be a whole number", output)

    def test_echo_port_in_use(self) -> None:
        """
        C{twistd -n txmsg-echo --listen tcp:PORT} on a busy port: one line
        naming the address, exit 1.
        """
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        output, code = run("twistd", "-n", "--pidfile=", "txmsg-echo", "--listen", "tcp:%d" % port)
        self.assertEqual(code, 1, output)
        self.assertOneLine(output, "127.0.0.1:%d: the address is already in use" % port)

    def test_echo_unix_missing_directory(self) -> None:
        """
        A UNIX socket in a directory that does not exist: one line, exit 1.
        """
        output, code = run(
            "twistd", "-n", "--pidfile=", "txmsg-echo", "--listen", "unix:/nonexistent-dir/x.sock"
        )
        self.assertEqual(code, 1, output)
        self.assertOneLine(output, "/nonexistent-dir/x.sock: the directory does not exist")

    def test_wrong_rabbitmq_password_one_shot(self) -> None:
        """
        C{txmsg send} / C{txmsg dead-letters} with a wrong password: the
        refusal named once, exit 1, quickly (no waiting for the timeout).
        """
        for sub in (["send", "add", "1"], ["dead-letters", "tasks"]):
            output, code = run("txmsg", *sub, "--amqp", WRONG_AMQP, "--timeout", "30", timeout=20)
            self.assertEqual(code, 1, output)
            self.assertOneLine(
                output, "RabbitMQ refused the login for user 'guest' on vhost '/'", "wrong-secret"
            )

    def test_wrong_rabbitmq_password_worker(self) -> None:
        """
        C{twistd -n txmsg-worker} with a wrong password names the refusal
        once (no NoTransition tracebacks) and exits 1.
        """
        output, code = run(
            "twistd", "-n", "--pidfile=", "txmsg-worker", *WORKER, "--amqp", WRONG_AMQP, timeout=30
        )
        self.assertEqual(code, 1, output)
        self.assertNotIn("NoTransition", output)
        self.assertOneLine(output, "RabbitMQ refused the login for user 'guest'", "wrong-secret")

    def test_wrong_redis_password(self) -> None:
        """
        C{txmsg workers} / C{txmsg control} against a Redis with another
        password: the refusal in one line, exit 1, no "Unhandled error".
        """
        server = RedisServer("--requirepass", "right-secret").start()
        self.addCleanup(server.stop)
        url = "redis://:wrong-secret@127.0.0.1:{}/0".format(server.port)
        for sub in (["workers"], ["control", "w1", "ping"]):
            output, code = run("txmsg", *sub, "--redis", url, timeout=20)
            self.assertEqual(code, 1, output)
            self.assertOneLine(output, "refused the login: WRONGPASS", "wrong-secret")
