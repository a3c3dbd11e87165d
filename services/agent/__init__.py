"""The agent: holds one serving cluster's active restrictions and answers allow/deny checks."""
