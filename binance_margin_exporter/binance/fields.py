"""The one parse path for values in Binance's answers, shared by every product.

Binance sends numbers as decimal strings (``"11.64405625"``); a JSON number is accepted too.
Nothing else is a number here: not ``true``, not ``"1_0"``, not ``" 1"``, not non-ASCII digits,
not ``"inf"`` or ``"nan"``, not a magnitude beyond :data:`LARGEST` or (other than zero) below
:data:`SMALLEST`. Zero, however written (``"0"``, ``"0E-8"``, ``"-0.00000000"``), is ``0.0``. A
problem is an ``invalid_response`` :class:`~.errors.UpstreamError` naming the field.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

from binance_margin_exporter.binance.errors import UpstreamError, invalid

DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# The range of a parsed number (zero aside): no balance, price or rate comes near either bound,
# and within them the products and sums made of parsed numbers (:func:`times`, :func:`plus`, a
# price's inverse) stay finite floats: (1e100)^3 is 1e300.
LARGEST = 1e100
SMALLEST = 1e-100
ZERO = 0.0  # every zero parsed is this one float: most listed assets hold nothing


def to_number(value: Any, where: str, key: str = "") -> float:
    """A decimal string or a JSON number as a finite float; -0 becomes 0. ``where`` + ``key``
    names the field in the error (joined only when there is one).

    The common case costs one ``float()`` and a few character tests: what ``float()`` accepts
    beyond :data:`DECIMAL` (``"inf"``, ``"nan"``, ``"1_0"``, ``"+1"``, ``" 1"``, non-ASCII
    digits) fails one of them and takes :func:`_checked`, the strict path, which says why."""
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return _checked(value, where + key)
        # ASCII, no "_", no sign but "-", no surrounding space; finite (nan fails every
        # comparison) and within the range
        if value.isascii() and "_" not in value and value[0] != "+" and \
                value[0] > " " and value[-1] > " " and \
                (number == 0.0 or SMALLEST <= abs(number) <= LARGEST) and \
                ("+" not in value or DECIMAL.fullmatch(value)):
            return number if number else ZERO  # no "-0" in the exposition; one zero kept
    return _checked(value, where + key)


def _checked(value: Any, where: str) -> float:
    """:func:`to_number`, every check spelt out: the path of the rare value and of the
    error naming the field."""
    if isinstance(value, str):
        if not DECIMAL.fullmatch(value):
            raise invalid(f"{where}: not a decimal number: {value[:40]!r}")
        number = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer of 500 digits
            raise invalid(f"{where}: out of range: {str(value)[:40]!r}") from None
    else:
        raise invalid(f"{where}: expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise invalid(f"{where}: not a finite number: {str(value)[:40]!r}")
    if number and not SMALLEST <= abs(number) <= LARGEST:
        raise invalid(f"{where}: out of range: {str(value)[:40]!r}")
    return number + 0.0  # -0.0 + 0.0 == 0.0: no "-0" in the exposition


def decimal(value: float) -> Decimal:
    """A parsed number back as the decimal Binance wrote (``repr`` gives the shortest string
    that reads back as the same float: Binance's 8-decimal strings come back unchanged)."""
    return Decimal(repr(value))


def times(*factors: float) -> float:
    """The product of parsed numbers in decimal arithmetic, rounded once to a float:
    2144.83333328 x 95 is 203759.1666616, where float arithmetic says 203759.16666159997."""
    product = Decimal(1)
    for factor in factors:
        product *= decimal(factor)
    return _finite(product, "product")


def plus(*terms: float) -> float:
    """A sum of parsed numbers in decimal arithmetic, rounded once to a float."""
    return _finite(sum((decimal(term) for term in terms), Decimal(0)), "sum")


def _finite(result: Decimal, what: str) -> float:
    """``result`` as a float; an ``invalid_response`` where no finite float holds it. Parsed
    numbers lie within :data:`LARGEST`, so this cannot happen with three factors or fewer."""
    number = float(result)
    if not math.isfinite(number):
        raise invalid(f"a {what} of Binance's numbers is out of range: {result:.3e}")
    return number


def number(raw: Mapping[str, Any], key: str, where: str = "") -> float:
    """A required number."""
    value = raw.get(key)
    if value is None:
        raise invalid(f"{where}{key}: missing")
    return to_number(value, where, key)


def optional_number(raw: Mapping[str, Any], key: str, where: str = "") -> float | None:
    """A number, or None when the field is missing, null or an empty string."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    return to_number(value, where, key)


def optional_flag(raw: Mapping[str, Any], key: str, where: str = "") -> bool | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{where}{key}: expected true or false, got {type(value).__name__}")
    return value


def text(value: str) -> str:
    """A string from Binance as a label value can hold it: JSON allows a lone surrogate
    (``"\\ud800"``), which no UTF-8 page can carry; it becomes ``?`` here, at the parse
    boundary, so one odd name can never take the whole ``/metrics`` down."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def optional_string(raw: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{where}{key}: expected a string, got {type(value).__name__}")
    return text(value)


def string(raw: Mapping[str, Any], key: str, where: str = "") -> str:
    value = optional_string(raw, key, where)
    if value is None:
        raise invalid(f"{where}{key}: missing")
    return value


def obj(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise invalid(f"{where}: expected a JSON object, got {type(raw).__name__}")
    return raw


def array(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise invalid(f"{where}: expected a list, got {type(raw).__name__}")
    return raw



T = TypeVar("T")


class Unchanged(Generic[T]):
    """The model of one endpoint's last answer, kept with a digest of the answer's bytes: an
    answer that is byte for byte the last one is neither decoded nor parsed again, and gives
    the same model object (so what is made from the model can be kept too). A failed decode
    or parse keeps nothing and raises as it would have."""

    def __init__(self, parse: Callable[[Any], T]) -> None:
        self.parse = parse
        self._last: tuple[bytes, T] | None = None
        self._lock = threading.Lock()

    def __call__(self, body: bytes, decode: Callable[[bytes], Any]) -> T:
        digest = hashlib.blake2b(body, digest_size=16).digest()
        last = self._last
        if last is not None and last[0] == digest:
            return last[1]
        model = self.parse(decode(body))
        with self._lock:
            self._last = (digest, model)
        return model


class Lenient:
    """Optional fields of one answer, read leniently: a value that does not parse drops only
    its own metric (``None``), and its key is noted in :attr:`invalid` for the collector to
    count and warn of. Required fields stay strict: they fail the whole answer."""

    def __init__(self) -> None:
        self.invalid: list[str] = []

    def _read(self, read: Any, raw: Mapping[str, Any], key: str, where: str) -> Any:
        try:
            return read(raw, key, where)
        except UpstreamError:
            self.invalid.append(key)
            return None

    def number(self, raw: Mapping[str, Any], key: str, where: str = "") -> float | None:
        return self._read(optional_number, raw, key, where)  # type: ignore[no-any-return]

    def flag(self, raw: Mapping[str, Any], key: str, where: str = "") -> bool | None:
        return self._read(optional_flag, raw, key, where)  # type: ignore[no-any-return]

    def string(self, raw: Mapping[str, Any], key: str, where: str = "") -> str | None:
        return self._read(optional_string, raw, key, where)  # type: ignore[no-any-return]

    def noted(self) -> tuple[str, ...]:
        """The keys that did not parse, each once, in the order met."""
        return tuple(dict.fromkeys(self.invalid))


__all__ = [
    "Lenient",
    "Unchanged",
    "UpstreamError",
    "array",
    "number",
    "obj",
    "optional_flag",
    "optional_number",
    "optional_string",
    "string",
    "text",
    "to_number",
]
