"""The repository's folders, and the documented examples in tests/fixtures/."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
K8S = ROOT / "deploy" / "kubernetes"


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())
