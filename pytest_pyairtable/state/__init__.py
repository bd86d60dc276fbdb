"""Data the stack holds, saved and put back: PostgreSQL and Redis snapshots, resets,
and the data-safety step before a stop."""
