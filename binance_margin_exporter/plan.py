"""``--config.plan``: the request weight the configuration will cost, before the first call.

Reads the configuration only (no network, no key used). Per egress and Binance host: the weight
a minute each product declares for each account (``Product.weight_per_minute``, from the
endpoints ``binance/`` declares), the clock's sync, the total against that host's soft limit
(``ip_weight_soft_limit`` for the api host's /sapi; the same share of /papi's 6,000 and the
futures hosts' 2,400), and for weight that grows with a count known only online
(``Product.scaled_weight``: a master's sub-accounts) the cost per unit, the largest count that
fits, and the time one round (a detail rotation) takes. Nothing here names a product.

The figures are averages a minute: what a call every 5 minutes or every hour costs is spread
over its period (Binance counts it whole in the minute it is made: at start every call is due
at once).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from binance_margin_exporter.binance.endpoints import DECLARED, IP, TIME
from binance_margin_exporter.binance.limits import CLOCK_RESYNC_SECONDS, budget_of, soft_limit_of
from binance_margin_exporter.collectors.product import Product, Scaled, ScaledWeight, across_shards
from binance_margin_exporter.collectors.weights import Costs, Weights, host_of
from binance_margin_exporter.config import ConfigError, Settings

DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


# the intervals a plan is made for: Prometheus scrapes every few seconds to every few minutes
# (400 nines, or 1e308 hours, would divide by an infinity)
INTERVALS = (1.0, 86400.0)


def parse_duration(text: str) -> float:
    """Prometheus' spelling: 30s, 1m, 15 (seconds); from 1 s to 24 h."""
    match = DURATION.fullmatch(text.strip())
    seconds = float(match.group(1)) * UNITS[match.group(2)] if match else 0.0
    low, high = INTERVALS
    if not low <= seconds <= high:
        raise ConfigError(f"--scrape-interval: expected a duration such as 30s or 1m, from 1s "
                          f"to 24h, not {text[:20]!r}")
    return seconds


@dataclass
class _Budget:
    """One (egress, host): its fixed costs and what grows with a count."""

    fixed: list[tuple[str, str, float]] = field(default_factory=list)  # product, account, w
    scaled: list[tuple[str, str, Scaled]] = field(default_factory=list)
    at_start: float = 0.0  # the rare calls, all made at start (``Weights.at_start``)


def soft_limit(settings: Settings, host: str) -> float:
    """A host's soft limit a minute: ``ip_weight_soft_limit`` where /sapi counts (the api
    host, whose /api weight is counted in with it), else the same share of the smallest
    budget the endpoints declared on the host count on (papi's 6,000, fapi's 2,400)."""
    soft = float(settings.ip_weight_soft_limit)
    budgets = {budget_of(e.path) for e in DECLARED
               if e.budget == IP and host_of(settings, e) == host}
    if not budgets or "sapi" in budgets:
        return soft
    return min(soft_limit_of(budget, soft) for budget in budgets)


def weights_by_host(settings: Settings, products: Sequence[Product], interval: float
                    ) -> dict[tuple[str, str], tuple[float, float]]:
    """The plan's total a minute by (egress, host), the sub-accounts' details included (a
    master with ``all`` counts none: its number is known only online), and what the calls
    due at start add to the first minute."""
    budgets = _budgets(settings, products, interval)
    return {key: (sum(w for _, _, w in b.fixed) + sum(
        s.per_unit * s.count for _, _, s in b.scaled if s.count is not None), b.at_start)
        for key, b in budgets.items()}


def _budgets(settings: Settings, products: Sequence[Product],
             interval: float) -> dict[tuple[str, str], _Budget]:
    budgets: dict[tuple[str, str], _Budget] = {}
    egresses: dict[str, None] = {}
    for account in settings.accounts:
        if not settings.serves(account.name) and not any(
                across_shards(p) and p.reads(account, settings) for p in products):
            continue
        for product in products:
            if not product.reads(account, settings):
                continue
            if not across_shards(product) and not settings.serves(account.name):
                continue
            weights = product.weight_per_minute(account, settings, interval)
            scaled = product.scaled_weight(account, settings, interval) \
                if isinstance(product, ScaledWeight) else None
            egresses[account.egress] = None
            starting = weights.at_start if isinstance(weights, Weights) else {}
            for host, weight in weights.items():
                budget = budgets.setdefault((account.egress, host), _Budget())
                budget.fixed.append((product.name, account.name, weight))
                budget.at_start += starting.get(host, 0.0)
            if scaled is not None:
                budgets.setdefault((account.egress, scaled.host), _Budget()).scaled.append(
                    (product.name, account.name, scaled))
    # each egress keeps the api host's clock in step: every host keeps time with it
    clock = Costs(settings, interval).every(CLOCK_RESYNC_SECONDS, TIME).by_host
    for egress in egresses:
        for host, weight in clock.items():
            budget = budgets.setdefault((egress, host), _Budget())
            budget.fixed.append(("clock", "(every host)", weight))
            budget.at_start += clock.at_start.get(host, 0.0)
    return budgets


def plan(settings: Settings, products: Sequence[Product], interval: float) -> tuple[str, bool]:
    """The plan's text, and whether everything fits under the soft limits."""
    budgets = _budgets(settings, products, interval)
    lines = [f"Weight plan at a {interval:g} s scrape interval (a fetch every "
             f"{max(interval, settings.cache_ttl_seconds):g} s; cache_ttl_seconds "
             f"{settings.cache_ttl_seconds:g}); averages a minute per egress and host, "
             f"against each host's soft limit (ip_weight_soft_limit "
             f"{settings.ip_weight_soft_limit:g} on /sapi, the same share of the others')"]
    if settings.shard is not None:
        lines.append(f"shard {settings.shard.index}/{settings.shard.count}: this shard's "
                     f"accounts only")
    fits = True
    for (egress, host), budget in sorted(budgets.items()):
        soft = soft_limit(settings, host)
        lines.append(f"egress {egress}, host {host}:")
        for product, account, weight in budget.fixed:
            lines.append(f"  {product:<14} {account:<24} {weight:9.1f} a minute")
        fixed = sum(w for _, _, w in budget.fixed)
        known = sum(s.per_unit * s.count for _, _, s in budget.scaled if s.count is not None)
        for product, account, scaled in budget.scaled:
            count = "count known online" if scaled.count is None else f"{scaled.count}"
            cost = "" if scaled.count is None else \
                f" = {scaled.per_unit * scaled.count:.1f} a minute"
            lines.append(f"  {product:<14} {account:<24} {scaled.per_unit:9.2f} a minute a "
                         f"{scaled.unit} x {count}{cost}")
        total = fixed + known
        left = soft - total
        ok = left >= 0
        lines.append(f"  total {total:.1f} of {soft:.0f} a minute "
                     f"({'fits' if ok else 'OVER the soft limit'})")
        if budget.at_start:
            first = total + budget.at_start
            over = "" if first <= soft else \
                ": OVER the soft limit, the requests pause until the next minute"
            lines.append(f"  at start {budget.at_start:.1f} more: the calls of every 5 minutes "
                         f"to every day are all due at once (the first minute at most "
                         f"{first:.1f}{over})")
        open_ended = [s for _, _, s in budget.scaled if s.count is None]
        share = (soft - fixed) / max(len(budget.scaled), 1)
        for _, account, scaled in budget.scaled:
            largest = max(0, math.floor(share / scaled.per_unit)) if scaled.per_unit else 0
            if scaled.count is None:
                lines.append(f"  {account}: at most {largest} {scaled.unit}s fit (a round "
                             f"every {scaled.round_seconds:g} s)")
                continue
            cost = scaled.per_unit * scaled.count
            rotation = scaled.round_seconds if cost <= share else \
                (math.inf if share <= 0 else scaled.round_seconds * cost / share)
            lines.append(f"  {account}: {scaled.count} {scaled.unit}s, one round every "
                         f"{rotation:g} s (at most {largest} fit)")
        if open_ended and soft - fixed < 0:
            ok = False
        fits = fits and ok
    lines.append("fits" if fits else "does NOT fit: add an egress or a shard, scrape less "
                 "often, or raise detail_max_age_seconds")
    return "\n".join(lines), fits
