"""Running a stack: the orchestrator (scheduling, readiness gate), faults, timeline, data safety."""
