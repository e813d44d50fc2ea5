import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

project, tool, arguments, *flags = sys.argv[1:]  # flags: [] (read-only) or ["--allow-runs"]
SERVER = StdioServerParameters(command="reverse-etl", args=["--project", project, "mcp", *flags])


async def ask() -> dict:
    async with stdio_client(SERVER) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        answer = await session.call_tool(tool, json.loads(arguments))
        return {"error": answer.is_error, "data": answer.structured_content,
                "text": [c.text for c in answer.content if c.type == "text"]}


print(json.dumps(asyncio.run(ask())))
