"""pyproject's dev extras declare exactly the pins of requirements-dev.txt (hypothesis among them)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dev_extras_pin_what_requirements_dev_pins() -> None:
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    pins = {line.split("#")[0].strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert set(extras) == pins
    assert any(pin.startswith("hypothesis==") for pin in pins)
