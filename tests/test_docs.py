"""The documentation: the reference pages are what the code makes now, the site builds with
``mkdocs build --strict``, every alert's runbook link lands on its section, and the words that
list the products name every product of the list."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from binance_margin_exporter.config.settings import GLOBAL_SETTINGS
from binance_margin_exporter.products import PRODUCTS
from tests.support.paths import ROOT
from tests.support.processes import exporter_process, run_exporter

DOCS = ROOT / "docs"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "binance-margin.rules.yml"


def generator():
    spec = importlib.util.spec_from_file_location("docs_generator", ROOT / "scripts" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_pages_are_current():
    """A setting, a metric or an alert added or changed without regenerating fails here."""
    module = generator()
    for name, page in module.PAGES.items():
        path = DOCS / name
        assert path.is_file() and path.read_text() == page(), \
            f"docs/{name} is out of date: run python scripts/docs.py"


def test_every_setting_is_in_the_configuration_reference_with_its_meaning():
    page = (DOCS / "reference" / "configuration.md").read_text()
    declared = [*GLOBAL_SETTINGS, *(s for p in PRODUCTS for s in (*p.settings,
                                                                   *p.account_settings))]
    assert len(declared) >= 25
    for setting in declared:
        # (streams: a top-level key and an account's, each with its own meaning)
        meaning = re.escape(" ".join(setting.meaning.split()).replace("|", "\\|"))
        assert re.search(rf"^\| `{re.escape(setting.key)}` \|.* \| {meaning} \|", page, re.M), \
            f"{setting.key} is not in the configuration reference with its meaning"


def test_the_configuration_reference_gives_type_range_and_default():
    page = (DOCS / "reference" / "configuration.md").read_text()
    assert "| `recv_window_ms` | integer | 1 to 60,000 | `5000` |" in page
    assert "| `detail_fall_fraction` | number | 0 to 1 | `0.1` |" in page
    assert "| `sub_accounts` | list of sub-account e-mails | or `all` | `none` |" in page


def test_every_family_the_demo_serves_is_in_the_metrics_reference():
    """The real exporter's /metrics (every kind of demo account, with shards), scraped once:
    each family (process_* aside) has its row, with its type and HELP."""
    page = (DOCS / "reference" / "metrics.md").read_text()
    with exporter_process(["--demo", "--shard=0/1"], {}) as exporter:
        text = exporter.metrics()
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))  # counters: name_total
    assert len(helps) >= 100
    for name, help_ in helps.items():
        if name.startswith("process_"):
            continue
        shown = name
        row = re.search(rf"^\| `{shown}` \| (\w+) \|.*$", page, re.M)
        assert row, f"{shown} is not in the metrics reference: run python scripts/docs.py"
        assert row.group(1) == types[name].replace("unknown", "untyped"), shown
        unescaped = help_.replace("\\\\", "\\").replace("\\n", "\n")
        assert " ".join(unescaped.split()).replace("|", "\\|") in row.group(0), shown


def test_families_the_demo_does_not_show_are_in_the_reference_from_their_code():
    page = (DOCS / "reference" / "metrics.md").read_text()
    # only when a master has more than max_sub_accounts, or after a stream's level event
    assert "| `binance_margin_sub_accounts_left_out` | gauge | master |" in page
    assert "| `binance_margin_risk_event_level` | gauge | account |" in page
    # a helper's prefix is not a family
    assert "| `binance_margin_isolated` |" not in page


def test_every_alert_is_in_the_alerts_reference_linked_to_its_runbook():
    page = (DOCS / "reference" / "alerts.md").read_text()
    alerts = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
              for r in g["rules"] if "alert" in r]
    for alert in alerts:
        assert f"| [{alert}](../alerts.md#{alert.lower()}) |" in page, alert


def _mkdocs_build(site) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mkdocs") is None:
        message = "mkdocs is not installed (pip install '.[docs]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(site)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_and_every_runbook_url_lands_on_its_section(tmp_path):
    """A broken link or anchor fails the build; each alert's runbook_url names the alerts page
    and an anchor that page's HTML has, right before the alert's own heading."""
    result = _mkdocs_build(tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    html = (tmp_path / "site" / "alerts" / "index.html").read_text()
    alerts = [r for g in yaml.safe_load(RULES.read_text())["groups"]
              for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 20
    for rule in alerts:
        url = urlsplit(rule["annotations"]["runbook_url"])
        assert url.path.endswith("/docs/alerts.md"), rule["annotations"]["runbook_url"]
        anchor = re.search(rf'<a id="{re.escape(url.fragment)}"></a></p>\s*<h3[^>]*>'
                           rf'{rule["alert"]} ', html)
        assert anchor, f"{rule['alert']}: no #{url.fragment} before its runbook heading"
    assert html.count('id="binancemargincall"') == 1  # one element per anchor


def test_help_and_the_landing_page_name_every_product_of_the_list():
    names = [product.name.replace("_", " ") for product in PRODUCTS]
    result = run_exporter(["--help"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    with exporter_process(["--demo"], {}) as exporter:
        landing = requests.get(f"{exporter.url}/", timeout=15).text
    assert '<a href="/metrics">/metrics</a>' in landing
    for name in names:
        assert name in text, f"--help does not name the product {name}"
        assert name in landing, f"the landing page does not name the product {name}"


def test_the_package_docstrings_name_every_product_module():
    from binance_margin_exporter import binance, collectors, demo
    from binance_margin_exporter.products import ENTRIES

    for entry in ENTRIES:
        module = type(entry.product).__module__.rsplit(".", 1)[1]
        assert f":mod:`.{module}`" in collectors.__doc__, f"collectors' docstring: {module}"
        simulated = entry.simulated.__name__.rsplit(".", 1)[1]
        assert f":mod:`.{simulated}`" in demo.__doc__, f"demo's docstring: {simulated}"
    for path in (ROOT / "binance_margin_exporter" / "binance").glob("*.py"):
        if path.stem != "__init__":
            assert f":mod:`.{path.stem}`" in binance.__doc__, f"binance's docstring: {path.stem}"


def test_the_readme_is_short_and_ci_runs_the_test_command_it_gives():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15 * 1024, "README.md over 15 KB: move the detail to docs/"
    assert "\npip install '.[test,docs]' && pytest\n" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install -q '.[test,docs]'\n" in ci and "\npytest\n" in ci
    assert "mkdocs build --strict" in ci
    # every page of docs/ is in the site's navigation, and every page the README links exists
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        assert f": {page.relative_to(DOCS)}\n" in nav, f"{page.name} is not in mkdocs.yml's nav"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
