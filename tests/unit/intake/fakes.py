"""Hand-written fakes for intake unit tests."""

from __future__ import annotations

import asyncio

from shared.contracts.directives import DirectiveIssued, DirectiveLifted


class FakeTopic:
    """Records what the desk publishes; can be told to fail."""

    def __init__(self) -> None:
        self.events: list[DirectiveIssued | DirectiveLifted] = []
        self.failing = False

    async def publish(self, event: DirectiveIssued | DirectiveLifted) -> None:
        await asyncio.sleep(0)  # let concurrent requests interleave here, as a real broker round trip would
        if self.failing:
            raise ConnectionError("broker down")
        self.events.append(event)
