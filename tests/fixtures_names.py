"""Names of the spec example fixtures, by module (tests/fixtures/ocpi)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"

# Every spec Tariff example that carries last_updated (tariff_put_example.json lacks it).
TARIFF_EXAMPLES = sorted(
    p.name for p in FIXTURES.glob("tariff_*.json") if p.name != "tariff_put_example.json"
)
