"""Notifier: tells customers once, after enforcement is confirmed, that their access changed."""
