"""TLS (web/tls.py): client certificates, minimum version, certificates renewed in place."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from binance_margin_exporter.config import TLSConfig, WebConfig
from binance_margin_exporter.web.server import tls_context
from tests.support.waiting import wait_for
from tests.support.web import BODY, hashed, make_cert, running


def test_tls_with_basic_auth(pki):
    tls = TLSConfig(*pki["server"])
    with running(WebConfig(tls=tls, basic_auth_users={"prom": hashed("pw")})) as (server, _):
        url = f"https://127.0.0.1:{server.server_address[1]}"
        ok = requests.get(url + "/metrics", auth=("prom", "pw"), verify=pki["ca"], timeout=5)
        assert ok.status_code == 200 and ok.content == BODY
        assert requests.get(url + "/metrics", verify=pki["ca"], timeout=5).status_code == 401
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "/metrics", timeout=5)  # not trusted without the CA
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5)


def test_tls_client_certificates_required(pki):
    tls = TLSConfig(*pki["server"], client_ca_file=pki["ca"],
                    client_auth_type="RequireAndVerifyClientCert")
    with running(WebConfig(tls=tls)) as (server, _):
        url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
        assert requests.get(url, verify=pki["ca"], cert=pki["client"], timeout=5).content == BODY
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=pki["ca"], timeout=5)


def test_tls_client_certificate_verified_if_given(pki, tmp_path):
    tls = TLSConfig(*pki["server"], client_ca_file=pki["ca"],
                    client_auth_type="VerifyClientCertIfGiven")
    (tmp_path / "other").mkdir()
    _, _, stranger_crt, stranger_key = make_cert(tmp_path / "other", "stranger")
    with running(WebConfig(tls=tls)) as (server, _):
        url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
        assert requests.get(url, verify=pki["ca"], cert=pki["client"], timeout=5).content == BODY
        assert requests.get(url, verify=pki["ca"], timeout=5).content == BODY
        with pytest.raises(requests.exceptions.RequestException):  # given, not trusted
            requests.get(url, verify=pki["ca"], cert=(stranger_crt, stranger_key), timeout=5)


def test_no_client_certificate_asked_by_default(pki):
    context = tls_context(TLSConfig(*pki["server"], client_ca_file=pki["ca"]))
    assert context.verify_mode == ssl.CERT_NONE


def handshake(port: int, ca: str, version: ssl.TLSVersion) -> str:
    client = ssl.create_default_context(cafile=ca)
    client.minimum_version = client.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version()


@pytest.mark.parametrize(("min_version", "tls12_accepted"), [("TLS12", True), ("TLS13", False)])
def test_tls_min_version(pki, min_version, tls12_accepted):
    with running(WebConfig(tls=TLSConfig(*pki["server"], min_version=min_version))) as (s, _):
        port = s.server_address[1]
        assert handshake(port, pki["ca"], ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        if tls12_accepted:
            assert handshake(port, pki["ca"], ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        else:
            with pytest.raises(ssl.SSLError):
                handshake(port, pki["ca"], ssl.TLSVersion.TLSv1_2)


def test_slow_tls_client_does_not_block_others(pki):
    with running(WebConfig(tls=TLSConfig(*pki["server"]))) as (server, _):
        port = server.server_address[1]
        idle = socket.create_connection(("127.0.0.1", port))  # connects, never says hello
        try:
            started = time.monotonic()
            ok = requests.get(f"https://127.0.0.1:{port}/healthz", verify=pki["ca"], timeout=5)
            assert ok.status_code == 200 and time.monotonic() - started < 5
        finally:
            idle.close()


def test_a_tls_client_stopping_mid_handshake_does_not_block_others(pki):
    with running(WebConfig(tls=TLSConfig(*pki["server"]))) as (server, _):
        port = server.server_address[1]
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a hello
        wait_for(lambda: server.watcher.waiting, timeout=10)  # the server holds it
        try:
            ok = requests.get(f"https://127.0.0.1:{port}/healthz", verify=pki["ca"], timeout=5)
            assert ok.text == "ok\n"
        finally:
            half.close()


def test_the_test_certificates_pass_strict_x509_checks(pki):
    """Python 3.13 verifies with VERIFY_X509_STRICT by default: so do these tests, on any
    Python, so that a certificate 3.13 would refuse fails here too."""
    context = ssl.create_default_context(cafile=pki["ca"])
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    web = WebConfig(tls=TLSConfig(cert_file=pki["server"][0], key_file=pki["server"][1]))
    with running(web) as (server, _):
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")


def served_serial(port: int, ca: str) -> int:
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def renew(tmp_path, pki, cert, key) -> int:
    ca_cert = x509.load_pem_x509_certificate(open(pki["ca"], "rb").read())
    ca_key = serialization.load_pem_private_key(open(pki["ca_key"], "rb").read(), None)
    renewed, _, new_cert, new_key = make_cert(tmp_path, f"renewed{time.monotonic_ns()}",
                                              ca_key, ca_cert)
    os.replace(new_cert, cert)
    os.replace(new_key, key)
    return renewed.serial_number


@pytest.fixture
def live(tmp_path, pki):
    """Certificate files that the test renews in place."""
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki["server"][0], cert)
    shutil.copy(pki["server"][1], key)
    return cert, key


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path, pki, live):
    """cert-manager replaces the files: the next connection gets the new certificate."""
    cert, key = live
    with running(WebConfig(tls=TLSConfig(cert_file=str(cert), key_file=str(key)))) as (s, _):
        port = s.server_address[1]
        first = served_serial(port, pki["ca"])
        assert served_serial(port, pki["ca"]) == first
        renewed = renew(tmp_path, pki, cert, key)
        assert served_serial(port, pki["ca"]) == renewed != first


def test_a_renewed_certificate_that_does_not_load_keeps_the_previous_one(
        tmp_path, pki, live, caplog):
    cert, key = live
    with running(WebConfig(tls=TLSConfig(cert_file=str(cert), key_file=str(key)))) as (s, _):
        port = s.server_address[1]
        first = served_serial(port, pki["ca"])
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
        caplog.clear()
        assert served_serial(port, pki["ca"]) == first
        assert served_serial(port, pki["ca"]) == first
        errors = [r for r in caplog.records if "do not load" in r.getMessage()]
        assert len(errors) == 1 and errors[0].levelno == logging.ERROR  # once per change
        assert errors[0].getMessage() == "TLS files changed but do not load (SSLError); " \
            "serving the previous certificate"
        renewed = renew(tmp_path, pki, cert, key)
        assert served_serial(port, pki["ca"]) == renewed != first


def test_certificate_files_missing_mid_swap_keep_the_previous_one(tmp_path, pki, live, caplog):
    cert, key = live
    with running(WebConfig(tls=TLSConfig(cert_file=str(cert), key_file=str(key)))) as (s, _):
        port = s.server_address[1]
        first = served_serial(port, pki["ca"])
        key.unlink()
        assert served_serial(port, pki["ca"]) == first
        assert not [r for r in caplog.records if "do not load" in r.getMessage()]


def test_certificate_that_does_not_load_at_start_is_an_error(tmp_path, pki):
    bad = tmp_path / "bad.crt"
    bad.write_text("nothing")
    from binance_margin_exporter.web.tls import TLSFiles

    with pytest.raises(ssl.SSLError):
        TLSFiles(TLSConfig(cert_file=str(bad), key_file=pki["server"][1])).context()


def test_set_web_takes_new_users_and_certificates(tmp_path, pki):
    from tests.support.web import make_cert as mk

    ca_cert = x509.load_pem_x509_certificate(open(pki["ca"], "rb").read())
    ca_key = serialization.load_pem_private_key(open(pki["ca_key"], "rb").read(), None)
    other, _, other_crt, other_key = mk(tmp_path, "other", ca_key, ca_cert)
    web = WebConfig(tls=TLSConfig(*pki["server"]), basic_auth_users={"a": hashed("1")})
    with running(web) as (server, _):
        url = f"https://127.0.0.1:{server.server_address[1]}/metrics"
        assert requests.get(url, auth=("a", "1"), verify=pki["ca"], timeout=5).ok
        server.set_web(WebConfig(tls=TLSConfig(other_crt, other_key),
                                 basic_auth_users={"b": hashed("2")}))
        assert requests.get(url, auth=("a", "1"), verify=pki["ca"], timeout=5).status_code \
            == 401
        assert requests.get(url, auth=("b", "2"), verify=pki["ca"], timeout=5).ok
        assert served_serial(server.server_address[1], pki["ca"]) == other.serial_number
        server.set_web(WebConfig())  # no users: open; TLS stays on
        assert requests.get(url, verify=pki["ca"], timeout=5).ok


def test_a_large_page_over_tls_waits_for_a_slow_reader(pki):
    """The answer goes out from the watcher in slices, over a non-blocking TLS socket."""
    from tests.support.web import big_page

    with running(WebConfig(tls=TLSConfig(*pki["server"])), render=big_page(6_000_000)) as (s, _):
        context = ssl.create_default_context(cafile=pki["ca"])
        with socket.create_connection(("127.0.0.1", s.server_address[1]), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n"
                        b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            wait_for(lambda: len(s.watcher.writing) == 1, timeout=20)
            answer = b""
            while chunk := tls.recv(1 << 16):
                answer += chunk
    head, rest = answer.split(b"\r\n\r\n", 1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length > 5_000_000 and rest[length:].endswith(b"\r\n\r\nok\n")


def test_a_certificate_that_never_loaded_drops_the_connection_not_the_server(tmp_path, pki,
                                                                              caplog):
    bad = tmp_path / "bad.crt"
    bad.write_text("nothing")
    with running(WebConfig(tls=TLSConfig(cert_file=str(bad), key_file=pki["server"][1]))) as (
            server, _):
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            assert raw.recv(10) == b""  # closed at once
        assert server.watcher.count() == 0
        messages = [r.getMessage() for r in caplog.records]
        assert "connection from 127.0.0.1 ended with an error" in messages
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            assert raw.recv(10) == b""  # and the next one too: the server serves on
