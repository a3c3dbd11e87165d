"""Dev tooling apart from the product: registry generator and oracle, local broker, stack, waiting, scenarios.

Used by `cli`, `bench` and `tests`; nothing under `services/` or `shared/` imports it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: deploy/, services/, ... (an editable install)
