# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the Redis integration tests: the shared server check, a private
redis-server on a spare port, polling without blocking the reactor.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_URL = os.environ.get("TXMSG_REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_py(url: str = SHARED_URL) -> Any:
    """
    A redis-py client (the independent peer) for C{url}; fails the test
    clearly when that Redis does not answer.
    """
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except Exception as e:
        raise AssertionError(
            f"Redis integration tests need a Redis server at {url} "
            f"({type(e).__name__}: {e}); start "
            "one (e.g. `redis-server`) or set TXMSG_REDIS_URL"
        ) from None
    return client


def free_port() -> int:
    """
    A TCP port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """
    A private redis-server on a spare port, for tests that stop or
    reconfigure it.  Call L{stop} in cleanup.
    """

    def __init__(self, *extra: str) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise AssertionError("redis-server is not installed (apt-get install redis-server)")
        self.exe = exe
        self.extra = list(extra)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="txmsg-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        """
        Start the server and wait (briefly, blocking) until it answers.
        """
        args = [
            self.exe,
            *self.listen_args(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
        ] + self.extra
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                self.ping()
                return self
            except redis.exceptions.AuthenticationError:
                return self  # up, with --requirepass
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(
                        f"redis-server on port {self.port} did not start"
                    ) from None
                time.sleep(0.05)

    def listen_args(self) -> list[str]:
        """
        The redis-server arguments that say where it listens.
        """
        return ["--port", str(self.port)]

    def ping(self) -> None:
        """
        PING the server (raises until it answers).
        """
        import redis

        redis.Redis(port=self.port, socket_timeout=1).ping()

    def stop(self) -> None:
        """
        Stop the server (idempotent).
        """
        p, self.process = self.process, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup(self) -> None:
        """
        Stop and remove the data directory.
        """
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Deferred[Any]:
    """
    Poll C{predicate} on the reactor until it returns something true; fail
    with C{AssertionError} after C{timeout} seconds.
    """

    async def poll() -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s: {predicate!r}")
            await task.deferLater(reactor, interval, lambda: None)

    return Deferred.fromCoroutine(poll())


def subprocess_env(**extra: str) -> dict[str, str]:
    """
    The environment for running txmsg code in a child process.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_python(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> Deferred[tuple[bytes, bytes, int]]:
    """
    Run C{python ARGS} in the repository root without blocking the reactor.
    """
    from twisted.internet.utils import getProcessOutputAndValue

    d = getProcessOutputAndValue(sys.executable, args, env=env, path=ROOT)
    return d.addTimeout(timeout, reactor)
