"""A stand-in for "any MCP client" (OpenHands and the like): reads an MCP configuration file, connects to
the server it names, and plays a short episode with the SDK's client. Used by `--agent mcp-cmd:` tests."""

from __future__ import annotations

import json
import sys

import anyio
import mcp
from mcp import StdioServerParameters


async def main(config_path: str) -> None:
    server = json.load(open(config_path))["mcpServers"]["curbench"]
    params = StdioServerParameters(command=server["command"], args=server["args"], env=server.get("env"))
    async with mcp.Client(params, read_timeout_seconds=600) as client:
        print(json.dumps({"tools": sorted(t.name for t in (await client.list_tools()).tools)}), flush=True)
        await client.call_tool("bash", {"command": "python3 -c \"import json,os; rs=json.load(open(os.environ['POOL']"
                                        "+'/pool.json')); open('p.txt','w').write(chr(10).join(r['id'] for r in rs[:120]))\""})
        result = await client.call_tool("submit", {"path": "p.txt", "note": "first 120"})
        print(json.dumps({"submitted": not result.is_error}), flush=True)
        await client.call_tool("finish", {})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
