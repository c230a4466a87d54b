# Test support lives in testing/, beside the production packages and never in them.
pytest_plugins = ["testing.fixtures"]
