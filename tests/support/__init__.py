"""What the tests share, one module per job:

- ``paths``: the repository's folders (ROOT, FIXTURES, GOLDEN, K8S) and ``fixture_json``
- ``keys``: the API key and the recognisable secret every simulator accepts
- ``clocks``: clocks a test moves itself (``Clock``, ``StepClock``) and the fake wall time
- ``waiting``: polling with a deadline (``wait_for``, ``wait_idle``), never a fixed sleep
- ``pool``: the tests' shared fetch pool (``EXECUTOR``)
- ``fakes``: the one client stub (``StubClient``), recorded answers in a cache, and fake
  sources for the cross, isolated and prices collectors
- ``exporters``: an exporter in-process: collectors rendered (``Scraper``), a whole exporter
  built, scraped and closed (``built_exporter``, ``scrape_once``), expositions as values
- ``tools``: external tools (promtool, prometheus, alertmanager, amtool, helm, kubectl, node):
  missing, a skip on a workstation and a failure under CI=true; kustomize, CRD checks
- ``processes``: the exporter (or its demo) as a real process
- ``net``: a free port, a socket server, a raw HTTP server on 127.0.0.1
- ``gzip_bomb``: a small body that decodes to many MiB
- ``hosts``: Binance's api, papi, fapi and dapi hosts apart, a simulator each
- ``web``: the HTTP front's tests: a server in a thread, raw exchanges, bcrypt, certificates
"""
