"""A poison message on serving.commands.v1 is dead-lettered with its reason; the agent keeps going."""

from __future__ import annotations

import base64
from pathlib import Path

from shared.contracts.catalogue import ACKS, dead_letter_topic
from tests.integration.agent.conftest import Commands, TopicReader, new_agent, restrict_chunks


async def test_a_poison_command_is_dead_lettered_and_the_next_one_applied(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive = f"c-{unique}", f"D-{unique}"
    poison = f'{{"type": "RestrictCommand", "cluster_id": "{cluster}", "marker": "{unique}"}}'.encode()
    agent = new_agent(bootstrap, cluster, tmp_path)
    async with (
        TopicReader(bootstrap, dead_letter_topic("agent").name) as letters,
        TopicReader(bootstrap, ACKS.name) as acks,
        Commands(bootstrap) as commands,
    ):
        await agent.start()
        try:
            await commands.send_raw(cluster, poison)
            await commands.send_raw(cluster, b"not json at all " + unique.encode())
            await commands.send(*restrict_chunks(cluster, directive, 1, [("fable-5", [1])]))

            def carries(payload: bytes):
                return lambda m: m.get("value_b64") and base64.b64decode(m["value_b64"]) == payload

            letter = await letters.wait_for(carries(poison), "dead letter of the poison command")
            assert letter["topic"] == "serving.commands.v1" and letter["consumer"] == "agent"
            assert "invalid message" in letter["reason"] and base64.b64decode(letter["key_b64"]) == cluster.encode()
            await letters.wait_for(carries(b"not json at all " + unique.encode()), "dead letter of non-JSON")
            await acks.wait_for(
                lambda m: m["type"] == "CommandApplied" and m["directive_id"] == directive,
                "the good command after the poison ones applied",
            )
        finally:
            await agent.stop()
