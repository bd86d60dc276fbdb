"""Foundation used by every layer, importing nothing of ours: the exception family,
redaction of secrets, signal handling, and the plain-loader import hook."""
