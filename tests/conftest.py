"""Project-wide fixtures. Per-part fixtures live in each test package's conftest.py.

The rehearsed fleet (one ``make rehearsal`` run shared by the session's fleet tests) is a plugin module.
"""

pytest_plugins = ["tests.rehearsed_fleet"]
