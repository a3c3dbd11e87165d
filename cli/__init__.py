"""The `countermand` command line: one entry point composing each service's commands."""
