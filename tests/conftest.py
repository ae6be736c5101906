"""Project-wide fixtures. Per-part fixtures live in each test package's conftest.py."""
