"""How readiness is known: one small class per kind of check, and the retry policy."""
