"""The MCP surface: tools, resources, prompts and HTTP routes. Thin: one service call each."""
