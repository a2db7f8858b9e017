# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the TLS integration tests: a throw-away certificate authority
(server and client certificates for 127.0.0.1/localhost, plus a second CA
the client does not trust), a private TLS redis-server and a private
RabbitMQ node with a TLS listener.  Nothing here touches the shared servers.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.threads import deferToThread
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests._amqp_support import PrivateBroker, free_port
from tests._process import script
from tests._redis_support import RedisServer


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: str) -> None:
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    os.chmod(path, 0o600)


def _write_cert(cert: x509.Certificate, path: str) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class _CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _make_ca(cn: str) -> _CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _CA(key, cert)


def _issue(ca: _CA, cn: str, server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca.key, hashes.SHA256())


class TestPKI:
    """
    A CA, a server certificate (127.0.0.1 and localhost), a client
    certificate, and an unrelated CA (with its own client certificate) that
    nobody trusts, as PEM files in a temporary directory.

    @ivar ca: the CA certificate file the servers and good clients trust.
    @ivar server_cert / server_key: the server's certificate and key.
    @ivar client_cert / client_key: a client certificate issued by C{ca}.
    @ivar other_ca: a CA that signed nothing the servers use.
    @ivar rogue_cert / rogue_key: a client certificate from C{other_ca}.
    """

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="txmsg-pki-")
        ca = _make_ca("txmsg test CA")
        other = _make_ca("txmsg untrusted CA")
        self.ca = self._cert(ca.cert, "ca.pem")
        self.other_ca = self._cert(other.cert, "other-ca.pem")
        self.server_cert, self.server_key = self._pair(ca, "127.0.0.1", True, "server")
        self.client_cert, self.client_key = self._pair(ca, "txmsg-client", False, "client")
        self.rogue_cert, self.rogue_key = self._pair(other, "rogue-client", False, "rogue")

    def _cert(self, cert: x509.Certificate, name: str) -> str:
        path = os.path.join(self.dir, name)
        _write_cert(cert, path)
        return path

    def _pair(self, ca: _CA, cn: str, server: bool, stem: str) -> tuple[str, str]:
        key, cert = _issue(ca, cn, server)
        key_path = os.path.join(self.dir, stem + ".key")
        _write_key(key, key_path)
        return self._cert(cert, stem + ".pem"), key_path

    def cleanup(self) -> None:
        """Remove the files."""
        shutil.rmtree(self.dir, ignore_errors=True)


class TLSRedisServer(RedisServer):
    """
    A private redis-server that listens only on a TLS port, with the
    certificates of a L{TestPKI}.

    @param auth_clients: redis' C{--tls-auth-clients} (C{"no"}, C{"yes"},
        C{"optional"}).
    """

    def __init__(self, pki: TestPKI, auth_clients: str = "no", password: str | None = None) -> None:
        extra = [
            "--tls-cert-file",
            pki.server_cert,
            "--tls-key-file",
            pki.server_key,
            "--tls-ca-cert-file",
            pki.ca,
            "--tls-auth-clients",
            auth_clients,
        ]
        if password is not None:
            extra += ["--requirepass", password]
        super().__init__(*extra)
        self.pki = pki
        self.password = password
        cred = f":{password}@" if password is not None else ""
        self.url = f"rediss://{cred}127.0.0.1:{self.port}/0"

    def listen_args(self) -> list[str]:
        """TLS only: no plain port."""
        return ["--port", "0", "--tls-port", str(self.port)]

    def ping(self) -> None:
        """PING through a trusted TLS client."""
        self.peer().ping()

    def peer(self):  # type: ignore[no-untyped-def]
        """A redis-py client with the trusted CA and client certificate."""
        import redis

        return redis.Redis(
            port=self.port,
            password=self.password,
            socket_timeout=2,
            ssl=True,
            ssl_ca_certs=self.pki.ca,
            ssl_certfile=self.pki.client_cert,
            ssl_keyfile=self.pki.client_key,
        )


class TLSBroker(PrivateBroker):
    """
    A private RabbitMQ node (see L{PrivateBroker}) that also listens for
    AMQP over TLS on another loopback port.

    @param fail_if_no_peer_cert: require a client certificate signed by the
        test CA.
    @ivar tls_port: the TLS listener's port.
    """

    def __init__(self, pki: TestPKI, fail_if_no_peer_cert: bool = False) -> None:
        super().__init__()
        self.pki = pki
        self.tls_port = free_port()
        require = "true" if fail_if_no_peer_cert else "false"
        with open(os.path.join(self.dir, "rabbitmq.conf"), "a") as f:
            f.write(
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {pki.ca}\n"
                f"ssl_options.certfile = {pki.server_cert}\n"
                f"ssl_options.keyfile = {pki.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                f"ssl_options.fail_if_no_peer_cert = {require}\n"
            )

    def tls_url(self, **ssl_options: str) -> str:
        """An C{amqps://} URL for the TLS listener with C{ssl_options}."""
        from urllib.parse import quote

        url = f"amqps://guest:guest@127.0.0.1:{self.tls_port}/%2F"
        if ssl_options:
            url += "?ssl_options=" + quote(repr(ssl_options), safe="")
        return url


class OneLineErrors(TestCase):
    """
    Assertions for "one clear line" failures: of the library (a failed
    Deferred, logged once) and of the C{txmsg} command line.

    @ivar errors: formatted log events whose format mentions "connection
        failed" since C{setUp}.
    """

    def setUp(self) -> None:
        self.errors: list[str] = []

        def observe(event: LogEvent) -> None:
            if "connection failed" in (event.get("log_format") or ""):
                self.errors.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    async def failure_line(
        self, waiting: Awaitable[object], error: type[Exception], within: float
    ) -> str:
        """
        Await C{waiting}: it must fail with C{error} within C{within}
        seconds; return the error's message.
        """
        started = time.monotonic()
        try:
            await waiting
        except error as e:
            self.assertLess(time.monotonic() - started, within)
            return str(e)
        raise self.failureException(f"no {error.__name__}")

    def assertLine(self, line: str, expected: Sequence[str], redacted: str) -> None:
        """
        C{line} contains every C{expected} text and the C{redacted}
        credentials (C{user:***@}), and no traceback.
        """
        for text in expected:
            self.assertIn(text, line)
        self.assertIn(redacted, line)
        self.assertNotIn("Traceback", line)

    async def assertCLIFails(
        self, args: Sequence[str], expected: Sequence[str], redacted: str, secret: str
    ) -> None:
        """
        C{txmsg ARGS} exits non-zero with exactly one line on standard
        error (see L{assertLine}) and never prints C{secret}.
        """

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [script("txmsg"), *args], capture_output=True, text=True, timeout=60
            )

        r = await deferToThread(run)
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertLine(lines[0], expected, redacted)
        self.assertNotIn(secret, r.stdout + r.stderr)
