"""Basic auth (web/auth.py): bcrypt, the verified-pair cache, no timing leak of user names."""

from __future__ import annotations

import time

import requests

from binance_margin_exporter.config import WebConfig
from binance_margin_exporter.web import auth as auth_module
from binance_margin_exporter.web.auth import BasicAuth, cost_of
from tests.support.web import BODY, basic, hashed, raw_exchange, running


def test_basic_auth():
    with running(WebConfig(basic_auth_users={"prom": hashed("s3cret")})) as (_, url):
        for auth in (None, ("prom", "wrong"), ("nobody", "s3cret"), ("prom", "")):
            response = requests.get(url + "/metrics", auth=auth, timeout=5)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == \
                'Basic realm="binance-margin-exporter", charset="UTF-8"'
            assert BODY not in response.content
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert requests.get(url + "/", timeout=5).status_code == 401
        assert requests.head(url + "/metrics", timeout=5).status_code == 401
        assert requests.post(url + "/metrics", timeout=5).status_code == 405
        ok = requests.get(url + "/metrics", auth=("prom", "s3cret"), timeout=5)
        assert ok.status_code == 200 and ok.content == BODY
        # probes need no credentials
        assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_reload_needs_the_credentials_too():
    calls = []
    web = WebConfig(basic_auth_users={"prom": hashed("pw")})
    with running(web, reload=lambda: calls.append(1)) as (_, url):
        assert requests.post(url + "/-/reload", timeout=5).status_code == 401 and calls == []
        assert requests.post(url + "/-/reload", auth=("prom", "pw"), timeout=5).ok
        assert calls == [1]


def test_a_password_with_colons():
    auth = BasicAuth({"prom": hashed("a:b::c")})
    assert auth.check(basic("prom", "a:b::c")) is True
    assert auth.check(basic("prom", "a")) is False
    with running(WebConfig(basic_auth_users={"prom": hashed("a:b::c")})) as (_, url):
        assert requests.get(url + "/metrics", auth=("prom", "a:b::c"), timeout=5).ok
        assert requests.get(url + "/metrics", auth=("prom", "a:b:"), timeout=5).status_code \
            == 401


def test_basic_auth_remembers_only_the_exact_pair_it_verified():
    auth = BasicAuth({"prom": hashed("right")})
    assert auth.check(basic("prom", "right")) is True
    assert auth.check(basic("prom", "right")) is True  # from the verified-pair cache
    assert auth.check(basic("prom", "wrong")) is False  # same user, other password
    assert auth.check(basic("prom", "right!")) is False


def test_the_verified_pair_cache_spares_bcrypt_and_is_bounded(monkeypatch):
    users = {f"u{i}": hashed("pw") for i in range(3)}
    auth = BasicAuth(users)
    monkeypatch.setattr(auth_module, "CACHE_SIZE", 2)
    assert auth.check(basic("u0", "pw")) and auth.check(basic("u1", "pw"))
    checks = []
    real = auth_module.bcrypt.checkpw
    monkeypatch.setattr(auth_module.bcrypt, "checkpw",
                        lambda *a: checks.append(1) or real(*a))
    assert auth.check(basic("u1", "pw")) and checks == []  # remembered
    assert auth.check(basic("u2", "pw")) and checks == [1]  # a third: the cache starts over
    assert auth.check(basic("u2", "pw")) and checks == [1]
    assert auth.check(basic("u0", "pw")) and checks == [1, 1]  # forgotten


def test_basic_auth_unknown_user_is_refused_whatever_the_password():
    auth = BasicAuth({"prom": hashed("right")})
    for password in ("right", "", "not a password"):  # the last: the dummy hash's password
        assert auth.check(basic("stranger", password)) is False


def test_basic_auth_garbage_headers():
    auth = BasicAuth({"prom": hashed("pw")})
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + "bm9jb2xvbg==", "Basic /w==",
                   "basic " + basic("prom", "pw")[6:], basic("prom", "pw")[1:]):
        assert auth.check(header) is False
    assert auth.check("Basic  " + basic("prom", "pw")[6:] + " ") is True
    encoded = basic("prom", "pw")[6:]
    assert auth.check("Basic " + encoded[:3] + "!" + encoded[3:]) is False  # strict base64


def test_a_password_over_72_bytes_is_refused_not_a_crash():
    auth = BasicAuth({"prom": hashed("right")})
    assert auth.check(basic("prom", "x" * 100)) is False
    assert auth.check(basic("nobody", "x" * 100)) is False
    with running(WebConfig(basic_auth_users={"prom": hashed("right")})) as (_, url):
        response = requests.get(url + "/metrics", auth=("prom", "y" * 100), timeout=5)
        assert response.status_code == 401


def test_headers_in_several_segments_keep_their_authorization():
    import socket

    with running(WebConfig(basic_auth_users={"prom": hashed("pw")})) as (server, _):
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            for part in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
                         b"Authorization: " + basic("prom", "pw").encode() + b"\r\n",
                         b"Connection: close\r\n", b"\r\n"):
                s.sendall(part)
                time.sleep(0.05)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(BODY)


# ---- no timing leak of user names ----

def test_an_unknown_name_is_checked_at_a_cost_users_have_in_their_proportions():
    users = {"a": hashed("x", 4), "b": hashed("x", 4), "c": hashed("x", 4),
             "d": hashed("x", 5)}
    auth = BasicAuth(users)
    costs = [cost_of(auth.dummy_for(f"name{i}")) for i in range(400)]
    assert set(costs) == {4, 5}
    assert 0.65 < costs.count(4) / len(costs) < 0.85  # 3 users in 4 have cost 4
    # the same name, the same cost: again, and after a restart with the same users
    again = BasicAuth(users)
    assert [cost_of(again.dummy_for(f"name{i}")) for i in range(400)] == costs
    assert auth.dummy_for("name1") == auth.dummy_for("name1")
    # the dummies are real hashes of their cost
    assert {d[:7] for d in auth._dummies.values()} == {b"$2b$04$", b"$2b$05$"}


def test_other_users_draw_other_costs():
    one = BasicAuth({"a": hashed("x", 4), "b": hashed("x", 5)})
    other = BasicAuth({"a": hashed("x", 4), "b": hashed("x", 5)})  # other salts
    names = [f"name{i}" for i in range(64)]
    assert [one.dummy_for(n) for n in names] != [other.dummy_for(n) for n in names]


def test_without_users_the_dummy_has_the_default_cost():
    assert cost_of(BasicAuth({}).dummy_for("x")) == auth_module.DEFAULT_COST


def test_unknown_names_answer_as_fast_as_a_cheap_user_as_often_as_users_are_cheap():
    """A cost-4 user (about 1 ms) and a cost-9 one (about 25 ms): unknown names must answer
    in either time, not all in the slow one (that would tell them from the cheap user)."""
    auth = BasicAuth({"cheap": hashed("x", 4), "dear": hashed("x", 9)})

    def seconds(user: str) -> float:
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            auth.check(basic(user, "wrong"))
            timings.append(time.perf_counter() - started)
        return min(timings)

    cheap, dear = seconds("cheap"), seconds("dear")
    assert dear > 4 * cheap
    fast = sum(seconds(f"stranger{i}") < (cheap * dear) ** 0.5 for i in range(16))
    assert 1 <= fast <= 15, (fast, cheap, dear)


def test_raw_request_without_credentials_gets_the_challenge():
    with running(WebConfig(basic_auth_users={"prom": hashed("pw")})) as (_, url):
        answer = raw_exchange(url, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401 ") and answer.endswith(b"Unauthorized\n")
