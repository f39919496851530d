"""The cost ledger: history records of interest paid, forced liquidations and futures income.

Endpoints (all signed, USER_DATA; weights as Binance's docs give them in 2026):

- ``GET /sapi/v1/margin/interestHistory`` (weight 1 (IP)): ``asset``, ``isolatedSymbol``
  (without it: cross records only), ``startTime``, ``endTime`` (at most 30 days apart),
  ``current`` (page, from 1), ``size`` (at most 100). Newest first: ``{"rows": [{"txId",
  "interestAccuredTime", "asset", "principal", "interest", "interestRate", "type",
  "isolatedSymbol"}], "total"}``.
- ``GET /sapi/v1/margin/forceLiquidationRec`` (weight 1 (IP)): the same paging and window;
  ``rows`` of ``orderId``, ``symbol``, ``side``, ``price``, ``qty``, ``executedQty``,
  ``avgPrice``, ``isIsolated``, ``updatedTime``, ``timeInForce``.
- Portfolio Margin (papi host): ``GET /papi/v1/margin/marginInterestHistory`` (weight 1) and
  ``GET /papi/v1/margin/forceOrders`` (weight 1), the same shapes and paging.
- Futures income: ``GET /fapi/v1/income`` (weight 30), ``GET /dapi/v1/income`` (weight 20),
  ``GET /papi/v1/um/income`` (30) and ``/papi/v1/cm/income`` (30): ``startTime``,
  ``endTime`` (inclusive), ``limit`` (at most 1,000), oldest first; ``[{"symbol",
  "incomeType", "income" (signed), "asset", "info", "time", "tranId", "tradeId"}]``.
  ``tranId`` is unique within one ``incomeType`` of a user, so a record's id is both. Paged by
  time (Binance dropped ``page`` from fapi/dapi in October 2026): the next page starts at the
  last record's time, so records of one millisecond that straddle a page are read again and
  counted once by their id.

Amounts are kept as :class:`~decimal.Decimal` (a counter's sum is exact); a record whose
amount does not parse comes with ``amount`` None and the field named in ``bad``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from binance_margin_exporter.binance import fields
from binance_margin_exporter.binance.endpoints import Endpoint
from binance_margin_exporter.binance.errors import UpstreamError
from binance_margin_exporter.binance.limits import BUDGETS, budget_of
from binance_margin_exporter.binance.transport import BinanceClient
from binance_margin_exporter.logs import Throttled

log = logging.getLogger(__name__)

MARGIN_INTEREST = Endpoint("/sapi/v1/margin/interestHistory", 1)
MARGIN_LIQUIDATIONS = Endpoint("/sapi/v1/margin/forceLiquidationRec", 1)
PAPI_INTEREST = Endpoint("/papi/v1/margin/marginInterestHistory", 1,
                         host_setting="papi_base_url")
PAPI_LIQUIDATIONS = Endpoint("/papi/v1/margin/forceOrders", 1, host_setting="papi_base_url")
FUTURES_INCOME = {"um": Endpoint("/fapi/v1/income", 30, host_setting="fapi_base_url"),
                  "cm": Endpoint("/dapi/v1/income", 20, host_setting="dapi_base_url")}
PAPI_INCOME = {"um": Endpoint("/papi/v1/um/income", 30, host_setting="papi_base_url"),
               "cm": Endpoint("/papi/v1/cm/income", 30, host_setting="papi_base_url")}

PAGE_SIZE = 100  # the margin histories' largest page
INCOME_LIMIT = 1000  # the income histories' largest page
MAX_WINDOW_MS = 30 * 24 * 3600 * 1000  # the margin histories' longest window
MAX_PAGES = 200  # one stream's pages in one fetch (20,000 margin records, 200,000 income)
FETCH_WEIGHT_SHARE = 1 / 3  # of its host's weight a minute, the most one fetch spends
_carried = Throttled(logging.getLogger(__name__), 3600.0)  # windows read in part


@dataclass(frozen=True, slots=True)
class Record:
    """One history record: its id (unique within its stream), its time (ms), the label values
    of the counter it adds to, and the amount it adds (None: did not parse; 1 for a
    liquidation)."""

    id: str
    time_ms: int
    labels: tuple[str, ...]
    amount: Decimal | None
    bad: str = ""  # the field that did not parse (amount None)


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[Record, ...]
    raw_count: int  # rows in the answer
    total: int | None = None  # the margin histories' total


def amount(raw: Any) -> Decimal | None:
    """A decimal string as Binance sends it; None for anything else (or not finite, as a
    decimal or as a float)."""
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    # finite as a float too: the counter is shown as one ("1E+400" would be +Inf for good)
    return value if value.is_finite() and math.isfinite(float(value)) else None


class _BadRow(Exception):
    """A row that cannot be a record: it is skipped, and its field counted once."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _id(entry: Any, key: str, what: str) -> str:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() == "":
        raise _BadRow(f"{what} {key}")
    return str(value)


def _time(entry: Any, key: str, what: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadRow(f"{what} {key}")
    return value


def _string(entry: Any, key: str, what: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or value.strip() == "":
        raise _BadRow(f"{what} {key}")
    return fields.text(value)


def _rows(raw: Any, what: str, row: Callable[[Any], Record]) -> list[Record]:
    """Each row's record; a row that cannot be one (no id, no time, no label) becomes a
    skipped record named by its field: its id is the row's own (or, without one, a digest of
    the row) and its time unknown (-1), so it is noted once however often it is read again,
    and the rest of the page still counts."""
    records = []
    for entry in fields.array(raw, what):
        try:
            if not isinstance(entry, dict):
                raise _BadRow(f"{what} row")
            records.append(row(entry))
        except _BadRow as bad:
            digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str)
                                    .encode()).hexdigest()[:24]
            records.append(Record(f"invalid:{digest}", -1, (), None, bad.field))
    return records


def parse_interest(raw: Any, what: str = "interest history") -> Page:
    """An interest history page: records labelled (asset, isolatedSymbol or "")."""
    raw = fields.obj(raw, what)
    rows = fields.array(raw.get("rows", []), f"{what} rows")

    def row(entry: Any) -> Record:
        symbol = entry.get("isolatedSymbol")
        if symbol is not None and not isinstance(symbol, str):
            raise _BadRow(f"{what} isolatedSymbol")
        symbol = fields.text(symbol) if symbol else ""
        interest = amount(entry.get("interest"))
        if interest is not None and interest < 0:
            interest = None  # interest paid is never negative: garbage, not a refund
        return Record(f"{symbol}:{_id(entry, 'txId', what)}",
                      _time(entry, "interestAccuredTime", what),
                      (_string(entry, "asset", what), symbol), interest,
                      "" if interest is not None else f"{what} interest")

    total = raw.get("total")
    return Page(tuple(_rows(rows, what, row)), len(rows),
                total if isinstance(total, int) and not isinstance(total, bool) else None)


def parse_liquidations(raw: Any, what: str = "forced liquidations") -> Page:
    """A forced-liquidation page: one record per order, labelled (symbol, side)."""
    raw = fields.obj(raw, what)
    rows = fields.array(raw.get("rows", []), f"{what} rows")

    def row(entry: Any) -> Record:
        return Record(_id(entry, "orderId", what), _time(entry, "updatedTime", what),
                      (_string(entry, "symbol", what), _string(entry, "side", what)),
                      Decimal(1))

    total = raw.get("total")
    return Page(tuple(_rows(rows, what, row)), len(rows),
                total if isinstance(total, int) and not isinstance(total, bool) else None)


def parse_income(raw: Any, market: str, what: str = "income history") -> Page:
    """An income history page: labelled (market, type, asset, direction), the amount's
    absolute value (``direction``: received for a positive income, paid for a negative)."""
    rows = fields.array(raw, what)

    def row(entry: Any) -> Record:
        kind = _string(entry, "incomeType", what)
        income = amount(entry.get("income"))
        direction = "received" if income is not None and income >= 0 else "paid"
        return Record(f"{kind}:{_id(entry, 'tranId', what)}", _time(entry, "time", what),
                      (market, kind.lower(), _string(entry, "asset", what), direction),
                      None if income is None else abs(income),
                      "" if income is not None else f"{what} income")

    return Page(tuple(_rows(rows, what, row)), len(rows))


@dataclass(frozen=True, slots=True)
class Read:
    """What one stream's fetch of a window read: its records, its pages, and ``until``: the
    time (ms) to which the window was read completely (None: all of it); the rest is read at
    the next interval."""

    records: tuple[Record, ...]
    pages: int
    until: int | None = None


def windows(start_ms: int, end_ms: int, longest: int = MAX_WINDOW_MS) -> Iterator[tuple[int, int]]:
    while start_ms <= end_ms:
        yield start_ms, min(end_ms, start_ms + longest - 1)
        start_ms += longest


def pages_within(endpoint: Endpoint) -> int:
    """The most pages one fetch of a history reads: ``MAX_PAGES``, and at most a third of
    its host's weight a minute (so one large window never runs into the pause point and
    fails with every page read: 26 pages of /fapi (2,400 a minute, weight 30), 40 of /dapi,
    66 of /papi income, 200 of the margin histories)."""
    limit = BUDGETS[budget_of(endpoint.path)].limit * FETCH_WEIGHT_SHARE
    return max(1, min(MAX_PAGES, int(limit // max(endpoint.weight, 1))))


def _cut(endpoint: Endpoint, pages: int, until: int) -> None:
    _carried.warning("%s: a window has more records than %d pages; read to %d ms, the rest at "
                     "the next interval (warned once an hour)", endpoint.path, pages, until,
                     kind=endpoint.path)


def _not_stopped() -> bool:
    return False


def _check(stopped: Callable[[], bool], endpoint: Endpoint) -> None:
    if stopped():
        raise UpstreamError("timeout", f"{endpoint.path}: not read on: the exporter is closing",
                            sent=False)


def read_margin(client: BinanceClient, endpoint: Endpoint, parse: Any,
                params: Sequence[tuple[str, str]], start_ms: int, end_ms: int,
                deadline: float | None = None,
                stopped: Callable[[], bool] = _not_stopped) -> Read:
    """Every record of [start_ms, end_ms] of a newest-first history, page by page (100 a
    page, until ``total`` rows or a short page), in windows of at most 30 days, oldest
    first; ``stopped`` is asked before each page. A window whose ``total`` needs more pages
    than are left is cut: first its older part that the pages left can read (by its share of
    the records), so the read advances by whole pieces; it stops at the page budget
    (:func:`pages_within`), ``until`` the end of the last piece read completely."""
    records: list[Record] = []
    budget = pages_within(endpoint)
    pages, until = 0, start_ms - 1
    pieces = list(windows(start_ms, end_ms))
    while pieces:
        start, end = pieces.pop(0)
        current, read, complete = 1, 0, False
        while pages < budget:
            _check(stopped, endpoint)
            page = parse(client.signed_get(endpoint.path, [
                *params, ("startTime", str(start)), ("endTime", str(end)),
                ("current", str(current)), ("size", str(PAGE_SIZE))], deadline=deadline))
            pages += 1
            records.extend(page.records)
            read += page.raw_count
            if page.raw_count < PAGE_SIZE or (page.total is not None and read >= page.total):
                complete = True
                break
            left = budget - pages
            if current == 1 and end > start and left > 0 and page.total is not None and \
                    -(-page.total // PAGE_SIZE) - 1 > left:
                # too many for the pages left: first the older part the pages left can read
                # (its share of the time as of the records), then the rest
                span = (end - start + 1) * left * PAGE_SIZE // page.total
                cut = start + max(0, min(end - start - 1, span - 1))
                pieces[:0] = [(start, cut), (cut + 1, end)]
                break
            current += 1
        else:
            _cut(endpoint, budget, until)
            return Read(tuple(records), pages, until)
        if complete:
            until = end
    return Read(tuple(records), pages)


def read_income(client: BinanceClient, endpoint: Endpoint, market: str, start_ms: int,
                end_ms: int, deadline: float | None = None,
                stopped: Callable[[], bool] = _not_stopped) -> Read:
    """Every record of [start_ms, end_ms] of an oldest-first income history: 1,000 a page,
    the next page from the last record's time (inclusive: the same-time records straddling
    the boundary come again, and their ids count them once). At the page budget
    (:func:`pages_within`) it stops, ``until`` the millisecond before the next page's."""
    records: list[Record] = []
    budget = pages_within(endpoint)
    pages, start = 0, start_ms
    while start <= end_ms:
        if pages >= budget:
            _cut(endpoint, budget, start - 1)
            return Read(tuple(records), pages, start - 1)
        _check(stopped, endpoint)
        page = parse_income(client.signed_get(endpoint.path, [
            ("startTime", str(start)), ("endTime", str(end_ms)),
            ("limit", str(INCOME_LIMIT))], deadline=deadline), market)
        pages += 1
        records.extend(page.records)
        if page.raw_count < INCOME_LIMIT:
            break
        last = max(record.time_ms for record in page.records)
        if last <= start:
            # a full page of one millisecond: the next can only start after it
            log.warning("%s: more than %d records at %d ms; the rest of that millisecond is "
                        "not read", endpoint.path, INCOME_LIMIT, start)
            last = start + 1
        start = last
    return Read(tuple(records), pages)
