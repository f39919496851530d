"""The Binance REST client: the only package that knows HTTP and Binance's camelCase.

- :mod:`.errors` — :class:`UpstreamError` and the reasons a fetch can fail.
- :mod:`.fields` — the one strict way a JSON value becomes a number or a flag.
- :mod:`.signing` — HMAC-SHA256, Ed25519 and RSA request signatures.
- :mod:`.limits` — what one Binance host allows: its clock and its weight gates.
- :mod:`.endpoints` — every endpoint's path, weight, budget (IP or UID) and host, declared
  once: the requests, the gates, the plan and the simulator read them.
- :mod:`.transport` — one account's requests: clock, auth back-off, weights, error mapping;
  :mod:`.wire` — one request on the wire (query and signature, read whole by its deadline,
  the size cap); :mod:`.deadline` — the fetch's deadline, the body included;
  :mod:`.redaction` — no secret in any log record; :mod:`.egress` — the address or proxy
  requests leave by.
- one module per Binance product, holding its paths, models and parser: :mod:`.cross`,
  :mod:`.isolated`, :mod:`.sub_accounts`, :mod:`.portfolio`, :mod:`.portfolio_pro`,
  :mod:`.futures`, :mod:`.positions` (every product's positions), :mod:`.risk_lists`,
  :mod:`.loans` (flexible and VIP crypto loans), :mod:`.ledger` (the cost ledger's histories),
  :mod:`.streams` (listen keys and the risk streams' events), :mod:`.prices`,
  :mod:`.interest` (a test holds this list to the modules here).
- :mod:`.stream_connection` — one account's stream connection (listen key, WebSocket,
  keep-alive, reconnects), which hands each event to its ``on_event``.

Adding a product means adding a module here (paths, frozen models, a ``fetch_*`` function that
takes a :class:`~.transport.BinanceClient` and a deadline), one in ``collectors/``, one in
``demo/``, and one line in ``binance_margin_exporter.products``.
"""
