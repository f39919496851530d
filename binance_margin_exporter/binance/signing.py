"""Request signatures: HMAC-SHA256 (hex), Ed25519 and RSA PKCS#1 v1.5 (base64, URL-quoted).

The payload is the query string exactly as sent; the signature is appended as
``&signature=...``. No signer's ``repr`` shows its key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Protocol
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


class Signer(Protocol):
    def sign(self, payload: str) -> str:
        """Return the signature, ready to append to a URL as ``&signature=...``."""
        ...


class HmacSigner:
    """HMAC-SHA256 of the query string keyed with the API secret, as lower-case hex."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(<redacted>)"


class PrivateKeySigner:
    """Ed25519 or RSA (PKCS#1 v1.5, SHA-256): base64 signature, percent-encoded for the URL."""

    def __init__(self, pem: bytes, passphrase: bytes | None = None) -> None:
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError:
            raise ValueError(
                "the key is encrypted: set private_key_passphrase_file"
                if passphrase is None
                else "a passphrase was given but the key is not encrypted"
            ) from None
        except ValueError:
            raise ValueError("not a PEM private key (PKCS#8), or a wrong passphrase") from None
        except Exception:  # noqa: BLE001 - cryptography raises several kinds; none is ours
            raise ValueError("unsupported private key") from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            self.kind = "ed25519"
        elif isinstance(key, rsa.RSAPrivateKey):
            self.kind = "rsa"
        else:
            raise ValueError("only Ed25519 and RSA private keys are supported")
        self._key = key

    def sign_raw(self, payload: str) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(payload.encode())
        return self._key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())

    def sign(self, payload: str) -> str:
        return quote(base64.b64encode(self.sign_raw(payload)).decode(), safe="")

    def __repr__(self) -> str:
        return f"PrivateKeySigner({self.kind}, <redacted>)"


def make_signer(api_secret: str | None, private_key_pem: bytes | None,
                passphrase: bytes | None = None) -> Signer:
    """The signer for one set of credentials; ``ValueError`` (naming no secret) if unusable."""
    if api_secret is not None:
        return HmacSigner(api_secret)
    if private_key_pem is None:
        raise ValueError("no API secret and no private key")
    return PrivateKeySigner(private_key_pem, passphrase)
