"""How a service runs: the Backend protocol, local processes, containers, external services."""
