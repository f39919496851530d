"""The simulator's checks of a request's key and signature, as Binance makes them.

``X-MBX-APIKEY`` must name a registered key; the signature is HMAC-SHA256 hex, or base64
Ed25519 / RSA with the registered public key; ``timestamp`` must fall within ``recvWindow``
of the server's time. Each check answers None (the request passes) or (status, code, msg).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

Problem = tuple[int, int, str]  # (HTTP status, Binance error code, message)


def check_keyed(keys: Mapping[str, tuple[str, Any]], server_ms: Callable[[], int], query: str,
                headers: Any) -> Problem | None:
    """MARKET_DATA: None if the request carries a known key (and, if it is signed, a good
    signature in time), else (status, code, msg)."""
    if "&signature=" in query or query.startswith("signature="):
        return check_signed(keys, server_ms, query, headers)
    if headers.get("X-MBX-APIKEY") is None:
        return 400, -2014, "API-key format invalid."
    if headers.get("X-MBX-APIKEY") not in keys:
        return 401, -2015, "Invalid API-key, IP, or permissions for action."
    return None


def check_signed(keys: Mapping[str, tuple[str, Any]], server_ms: Callable[[], int], query: str,
                 headers: Any) -> Problem | None:
    """None if the request is properly signed and timely, else (status, code, msg)."""
    key = keys.get(headers.get("X-MBX-APIKEY", ""))
    if headers.get("X-MBX-APIKEY") is None:
        return 400, -2014, "API-key format invalid."
    if key is None:
        return 401, -2015, "Invalid API-key, IP, or permissions for action."
    payload, sep, signature = query.rpartition("&signature=")
    if not sep or not signature:
        return 400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null."
    kind, material = key
    if kind == "hmac":
        expected = hmac.new(material, payload.encode(), hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, signature)
    else:
        valid = verify_public(material, payload.encode(), signature)
    if not valid:
        return 400, -1022, "Signature for this request is not valid."
    params = dict(parse_qsl(payload))
    if "timestamp" not in params:
        return 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null."
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", "5000"))
    except ValueError:
        return 400, -1100, "Illegal characters found in a parameter."
    if recv_window > 60000:
        return 400, -1131, "recvWindow must be less than 60000"
    now = server_ms()
    if timestamp >= now + 1000:
        return 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
    if now - timestamp > recv_window:
        return 400, -1021, "Timestamp for this request is outside of the recvWindow."
    return None


def verify_public(key: Any, payload: bytes, signature: str) -> bool:
    """Does the base64 ``signature`` (Ed25519, or RSA PKCS#1 v1.5 SHA-256) sign ``payload``?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding

    try:
        raw = base64.b64decode(unquote(signature), validate=True)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, payload)
        else:
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True
