"""Runtime wiring shared by every service: settings, logging, tracing, broker, dead letters, the run loop, HTTP
problem bodies, directive files and topic replay."""
