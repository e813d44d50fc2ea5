"""``reverse-etl mcp``: the project over the Model Context Protocol (stdio), for AI assistants.

Needs the official MCP Python SDK: ``pip install 'reverse_etl[mcp]'``.
See :mod:`reverse_etl.mcp.server`.
"""
