"""The stack as data: compose loading, interpolation, durations, probes as data, the DAG."""
