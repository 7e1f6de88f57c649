"""HTTP API: OpenAI-compatible embeddings, similarity, paraphrase and search, micro-batched.

``create_app(embedder, ServeSettings(...), index=None)`` returns a FastAPI app;
``run_server(app, host, port)`` serves it. ``anlam serve`` does both.
"""

from anlam.serve.app import APIError, ServeSettings, create_app, run_server
from anlam.serve.batcher import MicroBatcher, QueueFull

__all__ = ["APIError", "MicroBatcher", "QueueFull", "ServeSettings", "create_app", "run_server"]
