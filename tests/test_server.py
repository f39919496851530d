"""The HTTP server: routes, basic auth, TLS with a certificate made at test time, gzip."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import os
import socket
import threading
import time

import bcrypt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily

from binance_margin_exporter.config import TLSConfig, WebConfig
from binance_margin_exporter.web.server import BasicAuth, make_server, parse_listen_address

BODY = b"# HELP x y\n# TYPE x gauge\nx 1.0\n"


def one_gauge(scrape_timeout):
    return [GaugeMetricFamily("x", "y", value=1.0)]


def serve(web: WebConfig | None = None, render=one_gauge, address=("127.0.0.1", 0),
          **kw):
    server = make_server(address, render, web, **kw)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def plain():
    server, _thread = serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_routes(plain):
    landing = requests.get(plain + "/", timeout=5)
    assert landing.status_code == 200 and 'href="/metrics"' in landing.text
    metrics = requests.get(plain + "/metrics", timeout=5, headers={"Accept-Encoding": "identity"})
    assert metrics.status_code == 200 and metrics.content == BODY
    assert metrics.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert requests.get(plain + "/healthz", timeout=5).text == "ok\n"
    assert requests.get(plain + "/nope", timeout=5).status_code == 404
    assert requests.post(plain + "/metrics", timeout=5).status_code == 405
    assert requests.head(plain + "/metrics", timeout=5).status_code == 200


def test_openmetrics_when_prometheus_asks_for_it(plain):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = requests.get(plain + "/metrics", timeout=5, headers={"Accept": accept})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.content == b"# HELP x y\n# TYPE x gauge\nx 1.0\n# EOF\n"


@pytest.mark.parametrize(("header", "seconds"), [("10", 10.0), ("1.5", 1.5), (None, None),
                                                 ("abc", None), ("-3", None), ("0", None)])
def test_prometheus_scrape_timeout_reaches_the_scrape(header, seconds):
    seen = []

    def scrape(scrape_timeout):
        seen.append(scrape_timeout)
        return one_gauge(scrape_timeout)

    server, _ = serve(render=scrape)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    headers = {} if header is None else {"X-Prometheus-Scrape-Timeout-Seconds": header}
    assert requests.get(url, timeout=5, headers=headers).status_code == 200
    assert seen == [seconds]
    server.shutdown()
    server.server_close()


def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_http_keep_alive_head_and_http_0_9(plain):
    # HEAD then GET on one connection: HEAD has no body (and, not fetching, no length), so
    # the GET's answer must start right after HEAD's headers.
    answer = raw_exchange(plain, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length" not in head
    get_head, body = rest.split(b"\r\n\r\n", 1)
    assert get_head.startswith(b"HTTP/1.1 200 ") and body == BODY
    # HTTP/0.9: the body alone, no status line or headers
    assert raw_exchange(plain, b"GET /metrics\r\n") == BODY


def test_gzip_when_asked(plain):
    raw = requests.get(plain + "/metrics", timeout=5, headers={"Accept-Encoding": "gzip"},
                       stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()) == BODY


def test_render_failure_is_a_500_and_the_server_keeps_serving():
    def broken(scrape_timeout):
        raise RuntimeError("bug")

    server, _ = serve(render=broken)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert requests.get(url + "/metrics", timeout=5).status_code == 500
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    server.shutdown()
    server.server_close()


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def test_basic_auth():
    server, _ = serve(WebConfig(basic_auth_users={"prom": hashed("s3cret")}))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for auth in (None, ("prom", "wrong"), ("nobody", "s3cret"), ("prom", "")):
        response = requests.get(url + "/metrics", auth=auth, timeout=5)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="')
        assert BODY not in response.content
    assert requests.get(url + "/", timeout=5).status_code == 401
    ok = requests.get(url + "/metrics", auth=("prom", "s3cret"), timeout=5)
    assert ok.status_code == 200 and ok.content == BODY
    # probes need no credentials
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    server.shutdown()
    server.server_close()


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_remembers_only_the_exact_pair_it_verified():
    auth = BasicAuth({"prom": hashed("right")})
    assert auth.check(basic("prom", "right")) is True
    assert auth.check(basic("prom", "right")) is True  # from the verified-pair cache
    assert auth.check(basic("prom", "wrong")) is False  # same user, other password
    assert auth.check(basic("prom", "right!")) is False


def test_basic_auth_unknown_user_is_refused_whatever_the_password():
    auth = BasicAuth({"prom": hashed("right")})
    for password in ("right", "", "not a password"):  # the last: the dummy hash's password
        assert auth.check(basic("stranger", password)) is False


def test_basic_auth_garbage_headers():
    auth = BasicAuth({"prom": hashed("pw")})
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + "bm9jb2xvbg==", "Basic /w=="):
        assert auth.check(header) is False


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


@pytest.fixture
def pki(tmp_path):
    ca_cert, ca_key, ca_path, ca_key_path = make_cert(tmp_path, "ca", is_ca=True)
    _, _, server_crt, server_key = make_cert(tmp_path, "server", ca_key, ca_cert)
    _, _, client_crt, client_key = make_cert(tmp_path, "client", ca_key, ca_cert)
    return {"ca": ca_path, "ca_key": ca_key_path, "server": (server_crt, server_key),
            "client": (client_crt, client_key)}


def test_tls_with_basic_auth(pki):
    tls = TLSConfig(*pki["server"])
    server, _ = serve(WebConfig(tls=tls, basic_auth_users={"prom": hashed("pw")}))
    url = f"https://127.0.0.1:{server.server_address[1]}"
    ok = requests.get(url + "/metrics", auth=("prom", "pw"), verify=pki["ca"], timeout=5)
    assert ok.status_code == 200 and ok.content == BODY
    assert requests.get(url + "/metrics", verify=pki["ca"], timeout=5).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/metrics", timeout=5)  # not trusted without the CA
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5)
    server.shutdown()
    server.server_close()


def test_tls_client_certificates_required(pki):
    tls = TLSConfig(*pki["server"], client_ca_file=pki["ca"],
                    client_auth_type="RequireAndVerifyClientCert")
    server, _ = serve(WebConfig(tls=tls))
    url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
    assert requests.get(url, verify=pki["ca"], cert=pki["client"], timeout=5).content == BODY
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=pki["ca"], timeout=5)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("min_version", "tls12_accepted"), [("TLS12", True), ("TLS13", False)])
def test_tls_min_version(pki, min_version, tls12_accepted):
    import ssl

    server, _ = serve(WebConfig(tls=TLSConfig(*pki["server"], min_version=min_version)))
    client = ssl.create_default_context(cafile=pki["ca"])
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as raw:
            if tls12_accepted:
                with client.wrap_socket(raw, server_hostname="localhost") as tls:
                    assert tls.version() == "TLSv1.2"
            else:
                with pytest.raises(ssl.SSLError):
                    client.wrap_socket(raw, server_hostname="localhost")
    finally:
        server.shutdown()
        server.server_close()


def test_slow_tls_client_does_not_block_others(pki):
    import socket

    server, _ = serve(WebConfig(tls=TLSConfig(*pki["server"])))
    port = server.server_address[1]
    idle = socket.create_connection(("127.0.0.1", port))  # connects, never says hello
    try:
        started = time.monotonic()
        ok = requests.get(f"https://127.0.0.1:{port}/healthz", verify=pki["ca"], timeout=5)
        assert ok.status_code == 200 and time.monotonic() - started < 5
    finally:
        idle.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9944", ("127.0.0.1", 9944)),
    (":9944", ("::", 9944)),
    ("[::1]:9944", ("::1", 9944)),
])
def test_listen_address(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9944", "host:", "host:http", "h:70000"])
def test_bad_listen_address(text):
    with pytest.raises(ValueError, match=r"--web\.listen-address"):
        parse_listen_address(text)


def test_keep_alive_and_shutdown_does_not_wait_for_idle_connections():
    import http.client

    server, _ = serve()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    for _ in range(3):  # one connection, several scrapes
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == BODY
    peer = conn.sock.getsockname()
    server.shutdown()
    closer = threading.Thread(target=server.server_close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), f"server_close waited on the idle connection from {peer}"
    conn.close()


def test_metrics_with_a_query_string_and_the_content_type_of_every_answer(plain):
    assert requests.get(plain + "/metrics?x=1", timeout=5).content == BODY
    for path, status in (("/nope", 404), ("/healthz", 200)):
        response = requests.get(plain + path, timeout=5)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert requests.get(plain + "/", timeout=5).headers["Content-Type"] == \
        "text/html; charset=utf-8"


def test_a_failed_render_answers_500_in_plain_text():
    def broken(scrape_timeout):
        raise RuntimeError("bug")

    server, _ = serve(render=broken)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    response = requests.get(url + "/metrics", timeout=5)
    assert (response.status_code, response.text) == (500, "internal error\n")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    server.shutdown()
    server.server_close()


def test_head_metrics_answers_without_fetching_from_binance():
    calls = []

    def scrape(scrape_timeout):
        calls.append(1)
        return one_gauge(scrape_timeout)

    server, _ = serve(render=scrape)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and calls == []
    assert head.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    requests.get(url, timeout=5)
    assert calls == [1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("accept", "gzipped"), [
    ("gzip", True), ("gzip, deflate", True), ("deflate, gzip;q=0.5", True), ("*", True),
    ("gzip;q=0", False), ("gzip;q=0.0, identity", False), ("*;q=0", False), ("identity", False),
    ("deflate", False), ("gzip;q=abc", False)])
def test_gzip_only_where_accepted_and_vary_always(plain, accept, gzipped):
    response = requests.get(plain + "/metrics", timeout=5, stream=True,
                            headers={"Accept-Encoding": accept})
    assert response.headers["Vary"] == "Accept-Encoding"
    assert ("Content-Encoding" in response.headers) is gzipped
    raw = response.raw.read()
    assert (gzip.decompress(raw) if gzipped else raw) == BODY


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(plain, method):
    response = requests.request(method, plain + "/metrics", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_the_telemetry_path_moves_the_metrics():
    server, _ = serve(metrics_path="/probe/metrics")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert requests.get(url + "/probe/metrics", timeout=5).content == BODY
    missing = requests.get(url + "/metrics", timeout=5)
    assert missing.status_code == 404 and b"/probe/metrics" in missing.content
    server.shutdown()
    server.server_close()


def test_all_interfaces_is_one_dual_stack_socket():
    import socket as sockets

    if not sockets.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    assert parse_listen_address(":9944") == ("::", 9944)
    server, _ = serve(address=("::", 0))
    port = server.server_address[1]
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok\n"
        assert requests.get(f"http://[::1]:{port}/healthz", timeout=5).text == "ok\n"
    finally:
        server.shutdown()
        server.server_close()


def test_an_ipv6_address_is_written_in_brackets_in_a_url():
    from binance_margin_exporter.web.server import url_host

    assert (url_host("::"), url_host("::1"), url_host("127.0.0.1")) == ("[::]", "[::1]",
                                                                       "127.0.0.1")


def test_a_password_over_72_bytes_is_refused_not_a_crash():
    auth = BasicAuth({"prom": hashed("right")})
    assert auth.check(basic("prom", "x" * 100)) is False
    assert auth.check(basic("nobody", "x" * 100)) is False
    server, _ = serve(WebConfig(basic_auth_users={"prom": hashed("right")}))
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    assert requests.get(url, auth=("prom", "y" * 100), timeout=5).status_code == 401
    server.shutdown()
    server.server_close()


def test_an_unknown_user_costs_what_a_known_one_does():
    auth = BasicAuth({"prom": hashed("right")})  # cost 4 in these tests
    assert auth._dummy.startswith(b"$2b$04$")
    strong = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=6)).decode()
    assert BasicAuth({"a": hashed("x"), "b": strong})._dummy.startswith(b"$2b$06$")


def test_the_test_certificates_pass_strict_x509_checks(pki):
    """Python 3.13 verifies with VERIFY_X509_STRICT by default: so do these tests, on any
    Python, so that a certificate 3.13 would refuse fails here too."""
    import ssl

    context = ssl.create_default_context(cafile=pki["ca"])
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    server, _ = serve(WebConfig(tls=TLSConfig(cert_file=pki["server"][0],
                                              key_file=pki["server"][1])))
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.shutdown()
        server.server_close()


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path, pki):
    """cert-manager replaces the files: the next connection gets the new certificate."""
    import shutil
    import ssl

    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki["server"][0], cert)
    shutil.copy(pki["server"][1], key)
    server, _ = serve(WebConfig(tls=TLSConfig(cert_file=str(cert), key_file=str(key))))
    port = server.server_address[1]

    def served_serial() -> int:
        context = ssl.create_default_context(cafile=pki["ca"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    try:
        first = served_serial()
        ca_cert = x509.load_pem_x509_certificate(open(pki["ca"], "rb").read())
        ca_key = serialization.load_pem_private_key(open(pki["ca_key"], "rb").read(), None)
        renewed, _, new_cert, new_key = make_cert(tmp_path, "renewed", ca_key, ca_cert)
        os.replace(new_cert, cert)
        os.replace(new_key, key)
        assert served_serial() == renewed.serial_number != first
    finally:
        server.shutdown()
        server.server_close()
