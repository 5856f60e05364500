"""Taskloom's built-in step tools."""

__version__ = "0.1.0"
