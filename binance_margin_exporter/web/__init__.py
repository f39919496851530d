"""The HTTP side: landing page, ``/metrics`` (text format or OpenMetrics, gzip), ``/healthz``;
TLS and basic auth from a ``--web.config.file`` (:mod:`.server`)."""
