"""Taskloom: an MCP server that schedules and runs chains of tool calls."""

__version__ = "0.1.0"
