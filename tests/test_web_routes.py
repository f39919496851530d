"""What each request gets (web/routes.py): routes, negotiation, gzip, HEAD, 405, timeouts."""

from __future__ import annotations

import gzip

import pytest
import requests

from binance_margin_exporter import __version__
from binance_margin_exporter.web.routes import accepts_gzip, has_body, request_end
from tests.support.web import BODY, one_gauge, raw_exchange, running


def test_routes(plain):
    landing = requests.get(plain + "/", timeout=5)
    assert landing.status_code == 200 and 'href="/metrics"' in landing.text
    assert landing.text.startswith("<!DOCTYPE html>") and landing.text.endswith("</html>\n")
    assert landing.headers["Server"] == f"binance-margin-exporter/{__version__}"
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
                                                 ("abc", None), ("-3", None), ("0", None),
                                                 ("0.5", 0.5),
                                                 ("3599", 3599.0), ("3600", None)])
def test_prometheus_scrape_timeout_reaches_the_scrape(header, seconds):
    seen = []

    def scrape(scrape_timeout):
        seen.append(scrape_timeout)
        return one_gauge(scrape_timeout)

    with running(render=scrape) as (_, url):
        headers = {} if header is None else {"X-Prometheus-Scrape-Timeout-Seconds": header}
        assert requests.get(url + "/metrics", timeout=5, headers=headers).status_code == 200
    assert seen == [seconds]


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
    # HEAD of a page with a body: the headers only, and the connection serves on
    answer = raw_exchange(plain, b"HEAD /healthz HTTP/1.1\r\n\r\n"
                                 b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"ok\n") == 1 and answer.count(b"HTTP/1.1 200 ") == 2
    # bare newlines end the headers too
    assert raw_exchange(plain, b"GET /healthz HTTP/1.0\n\n").endswith(b"\r\n\r\nok\n")


def test_gzip_when_asked(plain):
    raw = requests.get(plain + "/metrics", timeout=5, headers={"Accept-Encoding": "gzip"},
                       stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()) == BODY


def test_render_failure_is_a_500_in_plain_text_and_the_server_keeps_serving(caplog):
    def broken(scrape_timeout):
        raise RuntimeError("bug")

    with running(render=broken) as (_, url):
        response = requests.get(url + "/metrics", timeout=5)
        assert (response.status_code, response.text) == (500, "internal error\n")
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
    assert [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name.endswith("routes") and r.levelname == "ERROR"] == \
        [("ERROR", "rendering /metrics failed: RuntimeError")]


def test_each_request_is_logged_at_debug(plain, caplog):
    requests.get(plain + "/healthz?probe=1", timeout=5)
    assert any(r.levelname == "DEBUG" and '"GET /healthz?probe=1 HTTP/1.1" 200' in r.getMessage()
               and r.getMessage().startswith("127.0.0.1 ") for r in caplog.records)


def test_metrics_with_a_query_string_and_the_content_type_of_every_answer(plain):
    assert requests.get(plain + "/metrics?x=1", timeout=5).content == BODY
    assert requests.get(plain + "/metrics?x=1?y", timeout=5).content == BODY
    for path, status in (("/nope", 404), ("/healthz", 200)):
        response = requests.get(plain + path, timeout=5)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert requests.get(plain + "/", timeout=5).headers["Content-Type"] == \
        "text/html; charset=utf-8"


def test_head_metrics_answers_without_fetching_from_binance():
    calls = []

    def scrape(scrape_timeout):
        calls.append(1)
        return one_gauge(scrape_timeout)

    with running(render=scrape) as (_, url):
        head = requests.head(url + "/metrics", timeout=5)
        assert head.status_code == 200 and calls == []
        assert head.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert head.headers["Vary"] == "Accept-Encoding"
        openmetrics = requests.head(url + "/metrics", timeout=5,
                                    headers={"Accept": "application/openmetrics-text"})
        assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
        requests.get(url + "/metrics", timeout=5)
        assert calls == [1]


@pytest.mark.parametrize(("accept", "gzipped"), [
    ("gzip", True), ("gzip, deflate", True), ("deflate, gzip;q=0.5", True), ("*", True),
    ("GZIP", True), ("*;q=0, gzip", True),
    ("gzip;q=0", False), ("gzip;q=0.0, identity", False), ("*;q=0", False), ("identity", False),
    ("deflate", False), ("gzip;q=abc", False), ("gzip;q=0, *", False), ("gzip ; q =0", False),
    ("gzip;q", False)])
def test_gzip_only_where_accepted_and_vary_always(plain, accept, gzipped):
    response = requests.get(plain + "/metrics", timeout=5, stream=True,
                            headers={"Accept-Encoding": accept})
    assert response.headers["Vary"] == "Accept-Encoding"
    assert ("Content-Encoding" in response.headers) is gzipped
    raw = response.raw.read()
    assert (gzip.decompress(raw) if gzipped else raw) == BODY
    assert accepts_gzip(accept) is gzipped


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(plain, method):
    response = requests.request(method, plain + "/metrics", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_reload_is_a_post_and_says_how_it_went():
    outcomes = [None, "bad yaml"]
    with running(reload=lambda: outcomes.pop(0)) as (_, url):
        get = requests.get(url + "/-/reload?x=1", timeout=5)
        assert get.status_code == 405 and get.headers["Allow"] == "POST"
        assert get.text == "Method not allowed\n"
        ok = requests.post(url + "/-/reload?a=1?b", timeout=5)
        assert (ok.status_code, ok.text) == (200, "reloaded\n")
        failed = requests.post(url + "/-/reload", timeout=5)
        assert (failed.status_code, failed.text) == (500, "reload failed: bad yaml\n")
        for answer in (get, ok, failed):
            assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    with running() as (_, url):  # no reload wired: not allowed
        assert requests.post(url + "/-/reload", timeout=5).status_code == 405


def test_the_telemetry_path_moves_the_metrics():
    with running(metrics_path="/probe/metrics") as (_, url):
        assert requests.get(url + "/probe/metrics", timeout=5).content == BODY
        missing = requests.get(url + "/metrics", timeout=5)
        assert missing.status_code == 404 and b"/probe/metrics" in missing.content


# ---- request smuggling: a body is never read as the next request ----

SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("framing", [
    b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
], ids=["content-length", "chunked"])
@pytest.mark.parametrize("outer", [b"POST /metrics", b"GET /healthz", b"POST /-/reload",
                                   b"FOO /metrics"])
def test_a_request_body_is_never_taken_for_the_next_request(plain, framing, outer):
    answer = raw_exchange(plain, outer + b" HTTP/1.1\r\nHost: x\r\n" + framing)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert b"Connection: close" in answer and BODY not in answer


def test_an_empty_body_keeps_the_connection(plain):
    answer = raw_exchange(plain, b"GET /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                                 b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.endswith(BODY)


@pytest.mark.parametrize(("headers", "body"), [
    ({}, False), ({"Content-Length": "0"}, False), ({"Content-Length": " 0 "}, False),
    ({"Content-Length": "5"}, True), ({"Content-Length": "x"}, True),
    ({"Transfer-Encoding": "chunked"}, True), ({"Transfer-Encoding": ""}, True)])
def test_has_body(headers, body):
    from email.message import Message

    message = Message()
    for name, value in headers.items():
        message[name] = value
    assert has_body(message) is body


@pytest.mark.parametrize(("data", "end"), [
    (b"GET / HTTP/1.1\r\n\r\nrest", 18), (b"GET / HTTP/1.1\n\nrest", 16),
    (b"GET /\r\nrest", 7), (b"GET / HTTP/1.1\r\nA: b\n\n\r\n\r\n", 22),
    (b"GET /\r\nrest\n", 7), (b"\r\n\r\nGET", 4), (b"\n\nGET", 2)])
def test_request_end(data, end):
    assert request_end(data) == end


def test_a_handler_that_raises_closes_the_connection_and_the_server_serves_on(caplog):
    def reload():
        raise RuntimeError("bug")

    with running(reload=reload) as (_, url):
        with pytest.raises(requests.ConnectionError):
            requests.post(url + "/-/reload", timeout=5)
        assert requests.get(url + "/healthz", timeout=5).text == "ok\n"
    (record,) = [r for r in caplog.records if "ended with an error" in r.getMessage()]
    assert record.getMessage() == "connection from 127.0.0.1 ended with an error"
    assert record.exc_info[0] is RuntimeError
