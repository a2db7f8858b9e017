# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd -n txmsg-echo} as a user runs it, talked to with plain sockets and
with the C{txmsg echo} console command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests._process import TwistdProcess, free_port, rss_kib, script, wait_for


def round_trip(sock: socket.socket, payload: bytes, timeout: float = 20) -> bytes:
    """
    Send C{payload} while reading the echo (a client that only writes would
    be held back by the server's backpressure) and return what came back.
    """
    import selectors

    sock.setblocking(False)
    received = bytearray()
    view = memoryview(payload)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(received) < len(payload):
            if time.monotonic() > deadline:
                raise AssertionError("echo of {} bytes timed out".format(len(payload)))
            if not view:
                sel.modify(sock, selectors.EVENT_READ)
            for _, events in sel.select(1):
                if events & selectors.EVENT_WRITE and view:
                    view = view[sock.send(view[: 1 << 16]) :]
                if events & selectors.EVENT_READ:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        raise AssertionError("connection closed early")
                    received += chunk
    sock.setblocking(True)
    return bytes(received)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 16))
        if not chunk:
            raise AssertionError("connection closed with {} bytes missing".format(n))
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class EchoTwistdTests(SynchronousTestCase):
    """
    The echo server plugin in a real twistd process.
    """

    def start(self, *args: str) -> TwistdProcess:
        server = TwistdProcess("txmsg-echo", args)
        self.addCleanup(server.cleanup)
        return server.start()

    def test_tcp_unix_udp_round_trips(self) -> None:
        """
        One server listens on TCP, a UNIX socket and UDP at once and echoes
        text, binary and a large payload byte for byte.
        """
        port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
        path = os.path.join(tempfile.mkdtemp(), "echo.sock")
        server = self.start(
            "--listen",
            "tcp:{}".format(port),
            "--listen",
            "unix:{}".format(path),
            "--udp",
            str(udp_port),
        )
        self.assertIn("interface=127.0.0.1", server.log())
        payloads = [b"hello", bytes(range(256)), os.urandom(1 << 20)]
        for family, address in [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, path)]:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(address)
                for payload in payloads:
                    self.assertEqual(round_trip(s, payload), payload)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"\x00datagram", ("127.0.0.1", udp_port))
            self.assertEqual(u.recvfrom(100)[0], b"\x00datagram")
        server.assert_clean_stop(server.terminate())

    def test_loopback_only_by_default(self) -> None:
        """
        Given C{tcp:PORT} without an interface, the server's socket is bound
        to 127.0.0.1, not to every interface (read from C{/proc/net/tcp}).
        """
        port = free_port()
        self.start("--listen", "tcp:{}".format(port))
        listening = []
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hexport = local.split(":")
                if int(hexport, 16) == port and state == "0A":  # 0A: LISTEN
                    listening.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
        self.assertEqual(listening, ["127.0.0.1"])

    def test_lean_reactor_by_default(self) -> None:
        """
        Without C{-r}, C{twistd txmsg-echo} runs on txmsg's lean epoll
        reactor and says so; C{-r epoll} gives Twisted's stock one.  Both
        echo.
        """
        for options, expected in [
            ([], "reactor class: txmsg.net.epollreactor.LeanEPollReactor."),
            (["-r", "epoll"], "reactor class: twisted.internet.epollreactor.EPollReactor."),
        ]:
            port = free_port()
            server = TwistdProcess("txmsg-echo", ["--listen", "tcp:{}".format(port)])
            server.twistd_options = options
            self.addCleanup(server.cleanup)
            server.start()
            self.assertIn(expected, server.log())
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                self.assertEqual(round_trip(s, b"which loop"), b"which loop")
            server.assert_clean_stop(server.terminate())

    def test_asyncio_reactor(self) -> None:
        """
        C{twistd --reactor=asyncio txmsg-echo} works: nothing installed the
        default reactor before twistd chose one.
        """
        port = free_port()
        server = TwistdProcess("txmsg-echo", ["--listen", "tcp:{}".format(port)])
        server.twistd_options = ["--reactor=asyncio"]
        self.addCleanup(server.cleanup)
        server.start()
        self.assertIn("AsyncioSelectorReactor", server.log())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            self.assertEqual(round_trip(s, b"via asyncio"), b"via asyncio")
        server.assert_clean_stop(server.terminate())

    def test_connection_cap(self) -> None:
        """
        With C{--max-connections 2} a third connection is closed at once and
        the refusal is logged.
        """
        port = free_port()
        server = self.start("--listen", "tcp:{}".format(port), "--max-connections", "2")
        keep = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            for s in keep:  # make sure both were accepted before the third
                s.sendall(b"x")
                self.assertEqual(recv_exactly(s, 1), b"x")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
                self.assertEqual(third.recv(10), b"")
            wait_for(lambda: "Refusing connection" in server.log(), 10, "the refusal log line")
        finally:
            for s in keep:
                s.close()

    def test_idle_timeout(self) -> None:
        """
        A connection idle for longer than C{--idle-timeout} is closed by the
        server.
        """
        port = free_port()
        self.start("--listen", "tcp:{}".format(port), "--idle-timeout", "0.5")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            started = time.monotonic()
            self.assertEqual(s.recv(10), b"")
            self.assertLess(time.monotonic() - started, 8)

    def test_sigterm_closes_connections_cleanly(self) -> None:
        """
        SIGTERM with a client connected: the client sees an orderly close and
        twistd shuts down cleanly, with no traceback.
        """
        port = free_port()
        server = self.start("--listen", "tcp:{}".format(port))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"ping")
            self.assertEqual(recv_exactly(s, 4), b"ping")
            status = server.terminate()
            self.assertEqual(s.recv(10), b"")
        server.assert_clean_stop(status)
        self.assertIn("Closing 1 open echo connection", server.log())

    def test_usage_errors(self) -> None:
        """
        A bad endpoint or option stops twistd with a one-line usage error and
        no traceback.
        """
        for args, expected in [
            (["--listen", "tcp:notaport"], "invalid --listen endpoint"),
            (["--max-connections", "-3"], "--max-connections must be at least 0, not -3"),
        ]:
            result = subprocess.run(
                [script("twistd"), "-n", "--pidfile=", "txmsg-echo"] + args,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertNotEqual(result.returncode, 0)
            output = result.stdout + result.stderr
            self.assertIn(expected, output)
            self.assertNotIn("Traceback", output)

    def test_port_in_use(self) -> None:
        """
        A port already in use stops twistd with a non-zero status.
        """
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = subprocess.run(
                [
                    script("twistd"),
                    "-n",
                    "--pidfile=",
                    "txmsg-echo",
                    "--listen",
                    "tcp:{}".format(port),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertIn("the address is already in use", output)
        self.assertNotIn("Traceback", output)


class EchoClientCommandTests(SynchronousTestCase):
    """
    The C{txmsg echo} console command against a real server.
    """

    def test_round_trip(self) -> None:
        """
        C{txmsg echo tcp:host=127.0.0.1:port=P hello} prints C{hello}; lines
        from standard input are echoed one by one.
        """
        port = free_port()
        server = TwistdProcess("txmsg-echo", ["--listen", "tcp:{}".format(port)])
        self.addCleanup(server.cleanup)
        server.start()
        result = subprocess.run(
            [script("txmsg"), "echo", "tcp:host=127.0.0.1:port={}".format(port), "hello"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "hello\n", ""))
        result = subprocess.run(
            [script("txmsg"), "echo", "127.0.0.1:{}".format(port)],
            input="one\ntwo\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((result.returncode, result.stdout), (0, "one\ntwo\n"))

    def test_refused(self) -> None:
        """
        Against a port nobody listens on, one clear line and exit status 1.
        """
        result = subprocess.run(
            [script("txmsg"), "echo", "127.0.0.1:{}".format(free_port()), "hello"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("could not connect", result.stderr)
        self.assertIn("refused", result.stderr)


WIRE_ECHO = """
import sys
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols.wire import Echo
port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
print("listening on", port.getHost().port, flush=True)
reactor.run()
"""


class BackpressureTests(SynchronousTestCase):
    """
    A client that writes 50 MB without reading cannot grow the server's memory.
    """

    TOTAL = 50 * 1024 * 1024

    def flood(self, port: int, pid: int) -> tuple[int, int]:
        """
        Write up to 50 MB to C{port} without reading, until the server stops
        taking data for a second; return (bytes sent, server RSS growth KiB).
        """
        before = rss_kib(pid)
        chunk = b"x" * 65536
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.setblocking(False)
            last_progress = time.monotonic()
            while sent < self.TOTAL and time.monotonic() - last_progress < 1.0:
                try:
                    n = s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                sent += n
                last_progress = time.monotonic()
            # Let the server read whatever it is going to read.
            peak = before
            settle = time.monotonic() + 2.0
            while time.monotonic() < settle:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.05)
        return sent, peak - before

    def test_txmsg_echo_memory_bounded(self) -> None:
        """
        Against txmsg-echo, the writer stalls after a few MB and the server's
        RSS grows by less than 16 MiB.
        """
        port = free_port()
        server = TwistdProcess("txmsg-echo", ["--listen", "tcp:{}".format(port)])
        self.addCleanup(server.cleanup)
        server.start()
        sent, growth = self.flood(port, server.pid)
        self.assertLess(sent, self.TOTAL // 2, "the server kept reading: no backpressure")
        self.assertLess(growth, 16 * 1024, "server RSS grew by {} KiB".format(growth))

    def test_control_plain_wire_echo_grows(self) -> None:
        """
        The control: plain L{twisted.protocols.wire.Echo} without backpressure
        takes all 50 MB and its memory grows by tens of MB, so the test above
        would catch a server that lost its backpressure.
        """
        import sys

        proc = subprocess.Popen(
            [sys.executable, "-c", WIRE_ECHO], stdout=subprocess.PIPE, text=True
        )
        self.addCleanup(lambda: (proc.kill(), proc.wait(10)))
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[-1])
        sent, growth = self.flood(port, proc.pid)
        self.assertGreaterEqual(sent, self.TOTAL)
        self.assertGreater(growth, 32 * 1024)
