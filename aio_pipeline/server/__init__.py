"""Server adapters: our server middlewares as a framework's own middleware (one module each)."""
