# -*- test-case-name: txmsg.test.test_tls -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg._tls}.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL.SSL import Error as SSLError
from service_identity import VerificationError
from service_identity.hazmat import DNS_ID, DNSMismatch
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txmsg._tls import AMQP_HINTS, REDIS_HINTS, client_tls_options, describe_tls_failure

WHERE = "rediss://:***@h:6380/0"


def _ssl_error(reason: str) -> SSLError:
    return SSLError([("SSL routines", "", reason)])


class DescribeTLSFailureTests(SynchronousTestCase):
    """
    Tests for L{describe_tls_failure}.
    """

    def test_not_trusted(self) -> None:
        """
        An OpenSSL verification failure names the verification failure, the
        server and the option that sets the CA.
        """
        text = describe_tls_failure(
            Failure(_ssl_error("certificate verify failed")), WHERE, REDIS_HINTS
        )
        self.assertEqual(
            text,
            "TLS certificate verification failed for rediss://:***@h:6380/0: the "
            "server's certificate is not signed by a trusted CA (certificate verify "
            "failed); add ?ca_certs=/path/to/ca.pem to the rediss:// URL",
        )

    def test_hints_per_scheme(self) -> None:
        """
        The AMQP hints name C{ssl_options}.
        """
        text = describe_tls_failure(
            _ssl_error("certificate verify failed"), "amqps://x", AMQP_HINTS
        )
        assert text is not None
        self.assertIn("ssl_options={'ca_certs': '/path/to/ca.pem'}", text)

    def test_client_certificate_required(self) -> None:
        """
        The TLS 1.3 "certificate required" alert says the server wants a
        client certificate and how to give one.
        """
        text = describe_tls_failure(
            _ssl_error("tlsv13 alert certificate required"), WHERE, REDIS_HINTS
        )
        assert text is not None
        self.assertIn("the server requires a client certificate", text)
        self.assertIn("certfile=/path/to/client.pem&keyfile=/path/to/client.key", text)

    def test_client_certificate_rejected(self) -> None:
        """
        An "unknown ca" alert says the server rejected the client
        certificate.
        """
        text = describe_tls_failure(_ssl_error("tlsv1 alert unknown ca"), WHERE, REDIS_HINTS)
        assert text is not None
        self.assertIn("the server rejected the client certificate (tlsv1 alert unknown ca)", text)

    def test_host_name_mismatch(self) -> None:
        """
        A service_identity mismatch says the certificate is for another
        host name.
        """
        error = VerificationError(errors=[DNSMismatch(mismatched_id=DNS_ID("example.com"))])
        text = describe_tls_failure(Failure(error), WHERE, AMQP_HINTS)
        assert text is not None
        self.assertIn("does not match the host name", text)
        self.assertIn("server_hostname", text)

    def test_other_tls_error(self) -> None:
        """
        Any other OpenSSL error is reported as a failed handshake with
        OpenSSL's reason.
        """
        self.assertEqual(
            describe_tls_failure(_ssl_error("wrong version number"), WHERE, REDIS_HINTS),
            f"TLS handshake with {WHERE} failed: wrong version number",
        )

    def test_not_tls(self) -> None:
        """
        Anything that is not a TLS failure gives L{None}.
        """
        self.assertIsNone(describe_tls_failure(Failure(ConnectionLost()), WHERE, REDIS_HINTS))
        self.assertIsNone(describe_tls_failure(ValueError("x"), WHERE, REDIS_HINTS))


def _pem_files(test: SynchronousTestCase) -> tuple[str, str, str]:
    """
    Write a self-signed certificate and its key; return (cert, key, both).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    paths = []
    for data in (cert_pem, key_pem, cert_pem + key_pem):
        path = test.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths[0], paths[1], paths[2]


class ClientTLSOptionsTests(SynchronousTestCase):
    """
    Tests for L{client_tls_options}.
    """

    def test_files(self) -> None:
        """
        A CA file and a client certificate with its key (in one file or
        two) give a connection creator.
        """
        cert, key, both = _pem_files(self)
        for options in (
            client_tls_options("h", cert, cert, key),
            client_tls_options("h", cert, both),
            client_tls_options("h"),
        ):
            self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(options))

    def test_missing_file(self) -> None:
        """
        A CA or client file that cannot be read raises L{ValueError} naming
        the file and what it is for.
        """
        cert, key, _ = _pem_files(self)
        missing = self.mktemp()
        e = self.assertRaises(ValueError, client_tls_options, "h", missing)
        self.assertEqual(
            str(e), f"cannot read the TLS CA file {missing}: No such file or directory"
        )
        e = self.assertRaises(ValueError, client_tls_options, "h", cert, cert, missing)
        self.assertIn(f"client key file {missing}", str(e))

    def test_not_pem(self) -> None:
        """
        A file that is not a PEM certificate raises L{ValueError} naming it.
        """
        cert, key, _ = _pem_files(self)
        e = self.assertRaises(ValueError, client_tls_options, "h", key)
        self.assertIn(f"the TLS CA file {key} is not a PEM certificate", str(e))
        e = self.assertRaises(ValueError, client_tls_options, "h", cert, cert)
        self.assertIn(f"the TLS client certificate {cert}", str(e))
