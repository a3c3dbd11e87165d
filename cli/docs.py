"""Generate the committed contract documents: JSON Schemas per topic, AsyncAPI per service.

`make docs` writes them; tests/contract/test_docs.py fails when the committed files drift from code.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.contracts.catalogue import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SERVICES = ("intake", "impact", "enforcement", "agent", "notifier", "audit")


def topic_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every topic's message type, keyed by file name."""
    return {f"schemas/{t.name}.json": t.adapter.json_schema(mode="serialization") for t in ALL_TOPICS}


def asyncapi_documents() -> dict[str, dict[str, Any]]:
    """AsyncAPI document of every service's FastStream app, keyed by file name.

    Built from default settings: a COUNTERMAND_* variable in the caller's environment (a bootstrap
    server, a cluster id) would otherwise leak into the documents and make them drift.
    """
    documents = {}
    with _default_settings():
        for name in SERVICES:
            app = importlib.import_module(f"services.{name}.app")
            spec = app.specification().to_specification()
            documents[f"asyncapi/{name}.json"] = json.loads(spec.to_json())
    return documents


@contextlib.contextmanager
def _default_settings() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("COUNTERMAND_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def render(document: dict[str, Any]) -> str:
    """The canonical text of a document (stable key order, trailing newline)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_documents() -> dict[str, str]:
    """Every generated document's text, keyed by path under docs/."""
    return {path: render(doc) for path, doc in {**topic_schemas(), **asyncapi_documents()}.items()}


def main() -> int:
    documents = expected_documents()
    for path, text in documents.items():
        target = DOCS / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(documents)} documents under {DOCS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
