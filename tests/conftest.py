pytest_plugins = ["reverse_etl.insider.emulator.pytest_plugin"]
