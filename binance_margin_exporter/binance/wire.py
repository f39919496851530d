"""A request on the wire: its query (encoded, signed), one HTTP exchange read whole by its
deadline and at most so many bytes, and what an answer's body says.

:class:`.transport.BinanceClient` decides what to send and what an answer means; this module
sends it and reads it. Nothing it raises contains the URL (and so the signature): requests'
own messages repeat it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlencode

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from binance_margin_exporter.binance.deadline import Fetch, Seconds
from binance_margin_exporter.binance.errors import UpstreamError, invalid
from binance_margin_exporter.binance.signing import Signer

READ_CHUNK = 65536
# A header's integer (a weight, a length): ASCII digits only. str.isdigit() also accepts "²"
# (which int() refuses) and "١٢" (which int() reads as 12).
ASCII_INTEGER = re.compile(r"[0-9]{1,18}")

# A signed GET's parameters: an encoded query string ("a=1&b=2"), a mapping or (name, value)
# pairs.
Params = str | Mapping[str, object] | Sequence[tuple[str, object]]

Answer = tuple[int, requests.structures.CaseInsensitiveDict[str], bytes]


def header_int(value: str | None) -> int | None:
    """A header's non-negative integer in ASCII digits, or None (absent or anything else)."""
    if value is None or not ASCII_INTEGER.fullmatch(value):
        return None
    return int(value)


def _param_pairs(params: Params) -> list[tuple[str, object]]:
    if isinstance(params, str):
        pairs: list[tuple[str, object]] = []
        for part in params.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote(name), unquote(value)))
        return pairs
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def encode_query(params: Params) -> str:
    """The query string of ``params``, every name and value percent-encoded (UTF-8, a space
    as ``%20``, ``+`` as ``%2B``: Binance decodes ``+`` as a space). A string is taken as a
    query encoded already and brought to the same form (a literal ``+`` in it is a plus)."""
    return urlencode(_param_pairs(params), quote_via=quote)


def signed_query(params: Params, recv_window_ms: int, timestamp_ms: int, signer: Signer) -> str:
    """The one place a signed query is built: the signature is over exactly the bytes sent."""
    query = encode_query([*_param_pairs(params), ("recvWindow", recv_window_ms),
                          ("timestamp", timestamp_ms)])
    return f"{query}&signature={signer.sign(query)}"


def parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise invalid(f"{what}: body is not valid JSON ({len(body)} bytes)") from None


def error_body(body: bytes) -> tuple[int | None, str, bool]:
    """(code, message, is Binance's own) of an error answer: ``{"code": -2015, "msg": "..."}``,
    an older ``{"success": false, "msg": "..."}`` (no code, Binance's all the same), or
    (None, a short description, False) for anything else (a proxy's page, a WAF's)."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None, "non-JSON body", False
    if isinstance(raw, dict) and isinstance(raw.get("code"), int) and \
            not isinstance(raw.get("code"), bool):
        return raw["code"], _short(raw.get("msg", "")), True
    if isinstance(raw, dict) and isinstance(raw.get("msg"), str):
        return None, _short(raw["msg"]), True
    return None, "unexpected JSON body", False


def _short(message: object) -> str:
    return str(message)[:200].replace("\n", " ")


def exchange(session: requests.Session, method: str, url: str, headers: dict[str, str], *,
             what: str, deadline: float, timeout: float, max_bytes: int) -> Answer:
    """Status, headers and body, all of it by ``deadline`` (each connect and read within
    ``timeout`` too); at most ``max_bytes``. Every failure is an :class:`UpstreamError`."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise UpstreamError("timeout", f"{what}: no complete answer in time")
    fetch = Fetch(deadline)  # handed down with the request as its timeout
    error: UpstreamError | None = None
    try:
        result = _read(session, method, url, headers, what, Seconds(min(left, timeout), fetch),
                       max_bytes)
    except UpstreamError as exc:
        error = exc
    except requests.RequestException as exc:
        # requests' own messages repeat the URL (and so the signature): never show them.
        error = _connection_error(exc, what)
    except (ReadTimeoutError, TimeoutError):
        error = UpstreamError("timeout", f"{what}: no complete answer in time")
    except (Urllib3Error, OSError) as exc:
        error = UpstreamError("connection", f"{what}: connection failed ({type(exc).__name__})")
    finally:
        cut_short = fetch.end()
    if cut_short:  # whatever the read got was cut short
        raise UpstreamError("timeout", f"{what}: no complete answer in time")
    if error is not None:
        raise error
    return result


def _read(session: requests.Session, method: str, url: str, headers: dict[str, str],
          what: str, timeout: Seconds, max_bytes: int) -> Answer:
    # Prepared by hand: Session.prepare_request re-parses and re-quotes the URL byte by
    # byte (a third of a request's CPU) and the URL must stay exactly as signed anyway.
    prepared = requests.PreparedRequest()
    prepared.prepare_method(method)
    prepared.url = url
    prepared.prepare_headers({**session.headers, **headers})  # checks them, as before
    prepared.prepare_cookies(session.cookies)
    prepared.prepare_body(None, None)  # Content-Length: 0 on a POST, PUT or DELETE
    response = session.send(prepared, timeout=timeout, allow_redirects=False, stream=True)
    with response:
        length = header_int(response.headers.get("Content-Length"))
        if length is not None and length > max_bytes:
            raise invalid(f"{what}: response of {length} bytes is over the limit")
        chunks, size = [], 0
        # read1 returns at most READ_CHUNK decoded bytes however well the body compresses
        # (urllib3 2.6 and later): a gzip bomb is cut off at max_bytes, never inflated.
        while chunk := response.raw.read1(READ_CHUNK, decode_content=True):
            size += len(chunk)
            if size > max_bytes:
                raise invalid(f"{what}: response is over {max_bytes} bytes")
            chunks.append(chunk)
        return response.status_code, response.headers, b"".join(chunks)


def _connection_error(exc: requests.RequestException, what: str) -> UpstreamError:
    if isinstance(exc, requests.Timeout) or any(
        isinstance(a, ReadTimeoutError) for a in exc.args
    ):
        return UpstreamError("timeout", f"{what}: no complete answer in time")
    return UpstreamError("connection", f"{what}: connection failed ({type(exc).__name__})")
