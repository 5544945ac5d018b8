"""How people see the platform: the HTTP API, the WebSocket feed and the console."""
