"""From Binance models to Prometheus metric families; never touches HTTP.

- :mod:`.cache` — the TTL + singleflight cache with deadlines that every product shares.
- one module per Binance product, with its metric table: :mod:`.cross`.
- :mod:`.exporter` — all products together, the scrape deadline, and the exporter's own
  metrics.
"""
