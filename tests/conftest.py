pytest_plugins = ["reverse_etl.emulator.pytest_plugin"]
