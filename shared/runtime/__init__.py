"""Runtime wiring shared by every service: settings, logging, tracing, broker and dead letters."""
