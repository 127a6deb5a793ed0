"""An OpenAI-compatible local server: `ondevice serve MODEL`, or `create_app(ServerSettings(...))` in Python.

Needs the `server` extra (fastapi, uvicorn).
"""

from ondevice.server.app import create_app, serve
from ondevice.server.settings import ServerSettings

__all__ = ["create_app", "serve", "ServerSettings"]
