# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for integration tests that run txmsg's programs as subprocesses.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

__all__ = ["free_port", "script", "TwistdProcess", "rss_kib", "wait_for"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """
    A port on 127.0.0.1 that was free a moment ago.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script(name: str) -> str:
    """
    The path of a console script installed beside the running Python.
    """
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        raise AssertionError("{} is not installed beside {}".format(name, sys.executable))
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """
    Poll C{predicate} until it is true; fail with C{what} after C{timeout}.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        time.sleep(interval)


def rss_kib(pid: int) -> int:
    """
    The resident set size of process C{pid} in KiB.
    """
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid {}".format(pid))


class TwistdProcess:
    """
    C{twistd -n} running one plugin in a subprocess, its log in a file.
    """

    def __init__(
        self,
        plugin: str,
        args: Sequence[str] = (),
        ready: str = "listening on",
        env: dict | None = None,
    ) -> None:
        self.plugin = plugin
        self.env = env
        self.args = list(args)
        self.ready = ready
        self.logfile = tempfile.NamedTemporaryFile(
            prefix="txmsg-twistd-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.twistd_options: list[str] = []

    def start(self, timeout: float = 20) -> TwistdProcess:
        """
        Start it and wait until its log shows the ready line.
        """
        self.process = subprocess.Popen(
            [script("twistd"), "-n", "--pidfile="]
            + self.twistd_options
            + [self.plugin]
            + self.args,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    "twistd {} exited with {}:\n{}".format(
                        self.plugin, self.process.returncode, self.log()
                    )
                )
            return self.ready in self.log()

        wait_for(ready, timeout, "twistd {} to be ready".format(self.plugin))
        return self

    def log(self) -> str:
        """
        Everything the process logged so far.
        """
        with open(self.logfile.name, errors="replace") as f:
            return f.read()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def terminate(self, timeout: float = 20) -> int:
        """
        Send SIGTERM and return the exit status.

        After a clean shutdown on a signal, twistd re-raises that signal on
        itself so that its exit status tells how it ended: a clean SIGTERM
        stop therefore shows as C{-SIGTERM}.
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def assert_clean_stop(self, status: int) -> None:
        """
        Fail unless C{status} and the log show twistd's clean shutdown.
        """
        log = self.log()
        if status not in (0, -signal.SIGTERM) or "Server Shut Down." not in log:
            raise AssertionError("twistd did not stop cleanly (status {}):\n{}".format(status, log))
        if "Traceback" in log:
            raise AssertionError("twistd logged a traceback:\n" + log)

    def cleanup(self) -> None:
        """
        Kill the process if it still runs and remove the log file.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.unlink(self.logfile.name)


def strip_log_prefix(text: str) -> str:
    """
    Remove twistd's timestamp prefixes from a log.
    """
    return re.sub(r"^\S+ \S+ \[[^\]]*\] ", "", text, flags=re.M)
