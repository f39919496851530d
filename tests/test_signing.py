"""Signatures: the official HMAC vector, RFC 8032 for Ed25519, RSA round trips."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from binance_margin_exporter.binance.cross import fetch_account
from binance_margin_exporter.binance.limits import Upstream
from binance_margin_exporter.binance.signing import HmacSigner, PrivateKeySigner, make_signer
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.demo.cross import SimulatedAccount
from binance_margin_exporter.demo.simulator import Simulator
from binance_margin_exporter.products import SIMULATED

DOCS_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOCS_PAYLOAD = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
                "&recvWindow=5000&timestamp=1499827319559")
DOCS_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"

RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46"
    "bd25bf5f0595bbe24655141438e7a100b"
)


def pem(key, passphrase: bytes | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_hmac_matches_the_binance_docs_vector():
    assert HmacSigner(DOCS_SECRET).sign(DOCS_PAYLOAD) == DOCS_SIGNATURE


def test_ed25519_matches_rfc8032_test_1():
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SECRET))
    signer = PrivateKeySigner(pem(key))
    assert signer.kind == "ed25519"
    assert signer.sign_raw("").hex() == RFC8032_SIGNATURE
    # In the URL: base64, percent-encoded (+, / and = are not safe in a query).
    url_form = signer.sign("")
    assert base64.b64decode(unquote(url_form)).hex() == RFC8032_SIGNATURE
    assert not set("+/=") & set(url_form)


def test_encrypted_key_needs_its_passphrase():
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = pem(key, b"correct horse")
    assert PrivateKeySigner(encrypted, b"correct horse").kind == "ed25519"
    with pytest.raises(ValueError, match="passphrase"):
        PrivateKeySigner(encrypted)
    with pytest.raises(ValueError, match="wrong passphrase"):
        PrivateKeySigner(encrypted, b"wrong")


def test_garbage_key_is_a_clear_error_without_its_content():
    with pytest.raises(ValueError) as info:
        PrivateKeySigner(b"-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n")
    assert "SECRETSTUFF" not in str(info.value)


def test_make_signer_picks_by_account():
    assert isinstance(make_signer("s", None), HmacSigner)
    key = ed25519.Ed25519PrivateKey.generate()
    signer = make_signer(None, pem(key))
    assert isinstance(signer, PrivateKeySigner)
    assert "redacted" in repr(signer)


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_round_trip_against_the_simulator(kind):
    key = (ed25519.Ed25519PrivateKey.generate() if kind == "ed25519"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    sim = Simulator(SIMULATED, account=SimulatedAccount(50, 5, drift=False))
    sim.add_public_key("pk-key", public_pem(key))
    with sim:
        client = BinanceClient(Upstream(sim.base_url), "pk-key", PrivateKeySigner(pem(key)))
        account = fetch_account(client)
        assert account.margin_level > 1
        # A different key of the same kind is refused by the simulator's verification.
        other = (ed25519.Ed25519PrivateKey.generate() if kind == "ed25519"
                 else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        bad = BinanceClient(Upstream(sim.base_url), "pk-key", PrivateKeySigner(pem(other)))
        from binance_margin_exporter.binance.errors import UpstreamError

        with pytest.raises(UpstreamError) as info:
            fetch_account(bad)
        assert info.value.code == -1022
        assert info.value.reason == "auth"

