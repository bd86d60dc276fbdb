"""A small shop backend shaped like a FastAPI + SQLModel application."""
