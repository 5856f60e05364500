"""The web dashboard: server-rendered pages over the same services the MCP tools use, with
every asset shipped in the package (no CDN), for `taskloom dashboard` and `serve --transport
http`."""
