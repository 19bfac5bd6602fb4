"""Root conftest: the ccp fixtures live in harness/pytest_plugin.py."""
pytest_plugins = ["harness.pytest_plugin"]
