"""Wire contracts: one pydantic v2 model per message, the topic catalogue and key functions."""
