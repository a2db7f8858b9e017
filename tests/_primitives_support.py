# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the Redis primitives' integration tests: a connection and a
unique key namespace per test (cleaned up), and child processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from typing import Any

from twisted.trial.unittest import TestCase

from tests._redis_support import ROOT, SHARED_URL, redis_py, subprocess_env, wait_for
from txmsg.redis import RedisConnection


class PrimitivesTestCase(TestCase):
    """
    A started L{RedisConnection} (C{self.conn}) to the shared Redis, a
    redis-py peer (C{self.peer}) and a namespace C{self.ns} whose keys are
    deleted after the test.
    """

    timeout = 120

    async def setUp(self) -> None:
        self.peer = redis_py()
        self.ns = "txmsg-test-" + uuid.uuid4().hex[:12]
        self.conn = RedisConnection(SHARED_URL)
        self.conn.startService()
        self.addCleanup(self._cleanup_keys)
        self.addCleanup(self.conn.stopService)
        await self.conn.when_connected(timeout=10)

    def _cleanup_keys(self) -> None:
        keys = list(self.peer.scan_iter(match=self.ns + "*", count=1000))
        for i in range(0, len(keys), 500):
            self.peer.delete(*keys[i : i + 500])

    def spawn(self, *args: str) -> Child:
        """
        Start C{python -m tests._primitives_child ARGS}; killed in cleanup.
        """
        child = Child(list(args))
        self.addCleanup(child.kill)
        return child


class Child:
    """
    A child process whose output goes to a temporary file.
    """

    def __init__(self, args: list[str]) -> None:
        self.out = tempfile.NamedTemporaryFile(prefix="txmsg-child-", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests._primitives_child"] + args,
            cwd=ROOT,
            env=subprocess_env(TXMSG_REDIS_URL=SHARED_URL),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def wait_output(self, text: str, timeout: float = 20) -> Any:
        """
        Fires once C{text} is in the output; fails if the process exits first.
        """

        def check() -> bool:
            if text in self.output():
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"child exited with {self.process.returncode}:\n{self.output()}"
                )
            return False

        return wait_for(check, timeout)

    def wait_exit(self, timeout: float = 60) -> Any:
        """
        Fires with the exit status.
        """
        return wait_for(lambda: self.process.poll() is not None, timeout).addCallback(
            lambda _: self.process.returncode
        )

    def sigkill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.out.close()
        os.unlink(self.out.name)
