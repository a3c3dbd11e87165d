"""Intake: turns directives submitted over HTTP or the CLI into directive events."""
