"""From Binance models to Prometheus metric families; never touches HTTP.

- :mod:`.product` — what a product is: its core (name, types, ``reads``, ``part``,
  ``collector``, ``weight_per_minute``) and the opt-in capabilities, each a small protocol.
- :mod:`.account_fetch` — the one account fetch: a product's fetch and families in, ``up``,
  errors, duration, last success, back-off and invalid fields out (``FetchProduct``).
- :mod:`.fetch_families` — the families of a fetch; :mod:`.tables` — a metric table into
  families, kept samples (``Memo``), a state set; :mod:`.invalid_fields` — the count of
  optional fields that did not parse.
- :mod:`.cache` — the TTL + singleflight cache with deadlines that every product shares.
- :mod:`.weights` — a product's weight a minute, from the endpoints ``binance/`` declares.
- one module per product, with its metric table, settings and ``PRODUCT``: :mod:`.cross`,
  :mod:`.isolated`, :mod:`.sub_accounts` (a package: the product, :mod:`.sub_accounts.group`
  one master's group, :mod:`.sub_accounts.roster` the list and status,
  :mod:`.sub_accounts.rotation` the detail rotation inside the weight budget),
  :mod:`.portfolio`, :mod:`.portfolio_pro`, :mod:`.futures`, :mod:`.positions`,
  :mod:`.risk_lists`, :mod:`.loans` (two products: flexible and VIP loans; their families in
  :mod:`.loan_families`), :mod:`.streams` (two products: the margin and the Portfolio Margin risk
  streams; an account's events counted, its account refreshed; the connection is
  ``binance.stream_connection``), :mod:`.prices` (listed in ``binance_margin_exporter.products``,
  which a test holds this list to); :mod:`.interest`, the hourly rates two of them show;
  :mod:`.cross_tables`, the cross account's metric tables.
- :mod:`.rate_limits` — what Binance allows this IP per host and egress; :mod:`.exporter` —
  every collector in one scrape, one deadline, and the exporter's own metrics; :mod:`.scrape`
  — what one scrape hands every product: its deadline and its prices; :mod:`.ledger` — the
  cost ledger's three products (:mod:`.ledger_tally`: their counting).
"""
