# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the AMQP integration tests: broker checks, unique names,
subprocesses whose output is read line by line, cleanup through pika's
BlockingConnection (an independent peer), and a private RabbitMQ node for
tests that must restart the broker.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
SHARED_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def require_broker(host: str = "127.0.0.1", port: int = 5672) -> None:
    """Fail (never skip) with a clear message when RabbitMQ is not reachable."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        raise AssertionError(
            f"RabbitMQ is not reachable at {host}:{port} ({e}); start it before the "
            "integration tests"
        ) from None


def unique(prefix: str = "txmsg-test") -> str:
    """A unique queue/exchange name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def env(**extra: str) -> dict:
    """The environment for example and seed subprocesses."""
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT
    e.setdefault("TXMSG_AMQP_URL", SHARED_URL)
    e.update(extra)
    return e


class Proc:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, args: list, environ: dict, cwd: str = ROOT) -> None:
        self.popen = subprocess.Popen(
            [PYTHON, "-u"] + args,
            cwd=cwd,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        t = threading.Thread(target=self._read, daemon=True)
        t.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _drain(self, timeout: float) -> str | None:
        line = self._q.get(timeout=timeout)
        if line is not None:
            self.lines.append(line)
        return line

    def wait_for(self, text: str, timeout: float = 20) -> None:
        """Wait until an output line contains C{text}."""
        deadline = time.time() + timeout
        if any(text in line for line in self.lines):
            return
        while time.time() < deadline:
            try:
                line = self._drain(max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if line is None:
                break
            if text in line:
                return
        self.kill()
        raise AssertionError(
            "{!r} not seen; output so far:\n{}".format(text, "\n".join(self.lines))
        )

    def finish(self, timeout: float = 30) -> str:
        """Wait for exit; return all output. Fails on timeout or non-zero exit."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("timed out; output:\n" + "\n".join(self.lines)) from None
        while True:
            try:
                if self._drain(5) is None:
                    break
            except queue.Empty:
                break
        out = "\n".join(self.lines)
        if rc != 0:
            raise AssertionError(f"exit status {rc}; output:\n{out}")
        return out

    def kill(self, sig: int = 9) -> None:
        """Kill the process (if still running)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(10)


def blocking(url: str = SHARED_URL):
    """A pika BlockingConnection (independent peer for checks and cleanup)."""
    import pika

    return pika.BlockingConnection(pika.URLParameters(url))


def cleanup(queues=(), exchanges=(), url: str = SHARED_URL) -> None:
    """Delete test queues and exchanges (ignoring ones that do not exist)."""
    conn = blocking(url)
    try:
        for q in queues:
            ch = conn.channel()
            ch.queue_delete(q)
            ch.close()
        for x in exchanges:
            ch = conn.channel()
            ch.exchange_delete(x)
            ch.close()
    finally:
        conn.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ctl(*args: str, node: str | None = None, home: str | None = None, timeout: float = 60) -> str:
    """Run rabbitmqctl (against the shared node, or C{node} with its C{home})."""
    e = dict(os.environ)
    cmd = [CTL]
    if node is not None:
        cmd = [CTL, "-n", node]
        e["HOME"] = home
    else:
        cmd = ["rabbitmqctl"]
    r = subprocess.run(cmd + list(args), env=e, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"rabbitmqctl {args} failed: {r.stdout}{r.stderr}")
    return r.stdout


def close_connections_named(
    name: str, reason: str = "txmsg fault test", node=None, home=None
) -> int:
    """Force-close the broker connections whose client-provided name is C{name}."""
    out = ctl(
        "list_connections",
        "pid",
        "client_properties",
        "--no-table-headers",
        "-q",
        node=node,
        home=home,
    )
    marker = f'{{"connection_name","{name}"}}'
    pids = [line.split("\t")[0] for line in out.splitlines() if marker in line]
    for pid in pids:
        ctl("close_connection", pid, reason, node=node, home=home)
    return len(pids)


class PrivateBroker:
    """
    A private RabbitMQ node (own node name, ports, data and log dirs, no
    plugins) for tests that restart the broker; never touches the shared node.
    """

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="txmsg-rmq-")
        self.node = f"txmsgtest-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        cookie = os.path.join(self.dir, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(secrets.token_hex(16).upper())
        os.chmod(cookie, 0o400)
        open(os.path.join(self.dir, "enabled_plugins"), "w").write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        self.env = dict(os.environ)
        self.env.update(
            HOME=self.dir,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq.conf"),
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        self.proc = subprocess.Popen(
            [SERVER],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ctl("wait", self.env["RABBITMQ_PID_FILE"], "--timeout", "90", timeout=120)
        require_broker(port=self.port)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl against this node."""
        return ctl(*args, node=self.node, home=self.dir, timeout=timeout)

    def stop(self) -> None:
        """Stop the node and remove its files."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.ctl("stop", timeout=60)
                except Exception:
                    pass
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, 9)
                    self.proc.wait(10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
