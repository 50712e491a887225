"""The HTTP adapter: FastAPI routes that parse, call one service method and render."""
