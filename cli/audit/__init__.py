"""`countermand audit report|explain|at`: answers read from Kafka itself (no service state), strictly read-only."""
