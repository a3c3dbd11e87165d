"""Test support: the session's real Kafka broker and service processes."""
