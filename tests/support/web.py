"""Shared by the tests of the HTTP front (tests/test_web_*.py): a server on 127.0.0.1 in a
thread, raw exchanges, bcrypt hashes, and certificates made at test time."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily

from binance_margin_exporter.config import WebConfig
from binance_margin_exporter.web.connections import Limits
from binance_margin_exporter.web.server import ExporterHTTPServer, make_server

BODY = b"# HELP x y\n# TYPE x gauge\nx 1.0\n"


def one_gauge(scrape_timeout):
    return [GaugeMetricFamily("x", "y", value=1.0)]


def big_page(size: int):
    """A scrape of about ``size`` bytes (1 kB labels: cheap to render)."""
    def scrape(scrape_timeout):
        family = GaugeMetricFamily("big", "y", labels=["i", "pad"])
        for i in range(size // 1030):
            family.add_metric([str(i), "p" * 1000], 1.0)
        return [family]
    return scrape


def serve(web: WebConfig | None = None, render=one_gauge, address=("127.0.0.1", 0),
          limits: Limits | None = None, **kw):
    if limits is None:
        server = make_server(address, render, web, **kw)
    else:
        server = ExporterHTTPServer(address, render, web or WebConfig(), limits=limits, **kw)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def stop(server) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def running(*args, **kw) -> Iterator[tuple[ExporterHTTPServer, str]]:
    server, _ = serve(*args, **kw)
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop(server)


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(sock: socket.socket, seconds: float = 5.0) -> bool:
    """Reads until the server closes ``sock`` (True) or ``seconds`` pass (False)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def make_cert(tmp_path, name: str, issuer_key=None, issuer_cert=None, is_ca=False):
    """A certificate strict X.509 checking accepts (Python 3.13's default): key identifiers,
    the authority's too, and key usages."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            (issuer_key or key).public_key()), critical=False)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=is_ca,
            encipher_only=False, decipher_only=False), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                   x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key, str(cert_path), str(key_path)


def make_pki(tmp_path) -> dict:
    ca_cert, ca_key, ca_path, ca_key_path = make_cert(tmp_path, "ca", is_ca=True)
    _, _, server_crt, server_key = make_cert(tmp_path, "server", ca_key, ca_cert)
    _, _, client_crt, client_key = make_cert(tmp_path, "client", ca_key, ca_cert)
    return {"ca": ca_path, "ca_key": ca_key_path, "server": (server_crt, server_key),
            "client": (client_crt, client_key)}
