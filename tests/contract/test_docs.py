"""The committed JSON Schemas and AsyncAPI documents match the code (run `make docs` to update)."""

from __future__ import annotations

from cli.docs import DOCS, expected_documents


def test_committed_contract_documents_match_the_code() -> None:
    drifted = []
    for path, text in expected_documents().items():
        committed = DOCS / path
        if not committed.exists() or committed.read_text() != text:
            drifted.append(path)
    assert not drifted, f"out of date (run `make docs`): {drifted}"


def test_every_topic_schema_names_every_message_type() -> None:
    documents = expected_documents()
    directives = documents["schemas/compliance.directives.v1.json"]
    assert "DirectiveIssued" in directives and "DirectiveLifted" in directives
    assert "AffectedSetChunk" in documents["schemas/compliance.impact.v1.json"]


def test_the_set_copies_topic_is_documented_as_binary_roaring() -> None:
    schema = expected_documents()["schemas/serving.sets.v1.json"]
    assert '"contentEncoding": "binary"' in schema and "application/vnd.countermand.roaring-chunk" in schema
    assert "BINARY on the wire" in schema and "CMS1" in schema
    assert "serving.sets.v1" in expected_documents()["asyncapi/enforcement.json"]
