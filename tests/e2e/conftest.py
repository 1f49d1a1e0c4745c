"""End-to-end tests share the fixtures of tests/conftest.py (simulator, systems)."""
