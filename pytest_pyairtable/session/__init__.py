"""One run of a stack, for both front ends: the runtime, typed settings, the owner of the
stack and its leases, sharing across processes, kept records, ports, run files,
reports and the bridge from events to hooks."""
