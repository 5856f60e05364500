"""The pure domain: task and run models, trigger math, fire planning, retry, outcomes.

Nothing here imports the store, FastMCP or any I/O; the layers above depend on it.
"""
