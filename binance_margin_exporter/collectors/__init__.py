"""From Binance models to Prometheus metric families; never touches HTTP.

- :mod:`.product` — what a product is (the protocols products share).
- :mod:`.families` — the shared idioms: a metric table into families, a state set, the
  families of a fetch (``up``, errors, duration, last success, back-off).
- :mod:`.cache` — the TTL + singleflight cache with deadlines that every product shares.
- one module per product, with its metric table, settings and ``PRODUCT``: :mod:`.cross`,
  :mod:`.isolated`, :mod:`.sub_accounts`, :mod:`.portfolio`, :mod:`.portfolio_pro`,
  :mod:`.futures`, :mod:`.positions`, :mod:`.risk_lists`, :mod:`.streams` (two products: the
  margin and the Portfolio Margin risk streams), :mod:`.prices` (listed in
  ``binance_margin_exporter.products``, which a test holds this list to); :mod:`.interest`,
  the hourly rates two of them show; :mod:`.cross_tables`, the cross account's metric tables.
- the sub-accounts' rooms: :mod:`.sub_account_group` (one master's group, polled each
  scrape), :mod:`.sub_account_roster` (list and status), :mod:`.sub_account_tiers` (the detail
  rotation inside the weight budget).
- :mod:`.streams` — the risk data streams' products: an account's events counted, its
  account refreshed (the connection is ``binance.stream_connection``).
- :mod:`.hosts` — what Binance allows this IP per host; :mod:`.exporter` — every collector in
  one scrape, one deadline, and the exporter's own metrics; :mod:`.scrape` — one scrape's
  deadline; :mod:`.ledger` — the cost ledger's three products (:mod:`.ledger_tally`: their
  counting); :mod:`.prices` also values the other products' assets in USDT.
"""
