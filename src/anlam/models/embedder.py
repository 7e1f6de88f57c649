"""``Embedder``: any sentence-transformers folder behind one typed ``encode``.

It adds what every anlam command needs on top of ``SentenceTransformer.encode``: prompt
names that work whether or not a model defines prompts, NFC before tokenising, Matryoshka
truncation with renormalisation, and long texts that are never cut silently.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from anlam.errors import AnlamError
from anlam.models import shipped
from anlam.text import nfc

logger = logging.getLogger(__name__)

PathLike = Path | str
LongMode = Literal["truncate", "window"]
UNBOUNDED_TOKENS = 1 << 30  # max_tokens of a model with no length limit (static embeddings)


def resolve_model_path(model: PathLike | None) -> str:
    """A local model folder (checked), a built-in model, or a hub name passed through.

    ``None`` is the default built-in model (the tuned ``anlam-ml-tr-small`` when this install ships
    it, else the base); a built-in name ("base", "e5-small", "anlam-ml-tr-small") is built on first
    use, unless a local folder of that name exists.
    """
    if model is None:
        return str(shipped.BUILTIN_MODELS[shipped.DEFAULT_MODEL]())
    path = Path(model)
    if not path.exists() and str(model) in shipped.BUILTIN_MODELS:
        return str(shipped.BUILTIN_MODELS[str(model)]())
    if path.exists():
        if not path.is_dir() or not ((path / "modules.json").exists() or (path / "config.json").exists()):
            raise AnlamError(f"{path}: not a model folder (no modules.json or config.json)")
        return str(path)
    if str(model).count("/") == 1 and not str(model).startswith((".", "/")):
        return str(model)  # a hub id such as "BAAI/bge-m3": sentence-transformers resolves it
    raise AnlamError(f"{path}: model folder does not exist")


def pick_device(device: str | None = None) -> str:
    """``device`` as given, else CUDA when present, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_sentence_transformer(model: PathLike | None = None, device: str | None = None):
    """Load a ``SentenceTransformer`` from a folder (safetensors only, no remote code)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    path = resolve_model_path(model)
    if (Path(path) / "anlam_export.json").is_file():  # ONNX / OpenVINO / static export (anlam export)
        from anlam.export.runtime import load_exported

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_exported(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SentenceTransformer(path, device=pick_device(device), trust_remote_code=False,
                                       model_kwargs={"use_safetensors": True})
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{path}: cannot load model ({exc})") from None


class Embedder:
    """A loaded embedding model with anlam's encode conventions.

    Attributes:
        model: the underlying ``SentenceTransformer``.
        path: where it was loaded from (folder or hub id).
    """

    def __init__(self, model, path: str) -> None:
        self.model = model
        self.path = path

    @classmethod
    def from_pretrained(cls, path: PathLike | None = None, device: str | None = None) -> Embedder:
        """Load ``path`` (a sentence-transformers folder or built-in name; ``None`` = the default built-in model).

        Raises:
            AnlamError: the path is not a model folder or cannot be loaded.
        """
        resolved = resolve_model_path(path)
        return cls(load_sentence_transformer(resolved, device), resolved)

    def save_pretrained(self, path: PathLike) -> None:
        """Save as a plain sentence-transformers folder."""
        self.model.save_pretrained(str(path))

    @property
    def dim(self) -> int:
        """Output dimension before any truncation."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Longest input, in tokens including special tokens, the model reads in one pass."""
        length = self.model.max_seq_length
        return int(length) if length is not None and math.isfinite(length) else UNBOUNDED_TOKENS

    @property
    def tokenizer(self):
        """A Hugging Face fast tokenizer (a static model's bare ``tokenizers.Tokenizer`` is wrapped once)."""
        tokenizer = self.model.tokenizer
        if not callable(tokenizer):
            if getattr(self, "_wrapped_tokenizer", None) is None:
                from transformers import PreTrainedTokenizerFast

                self._wrapped_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
            return self._wrapped_tokenizer
        return tokenizer

    def prompt_text(self, prompt: str | None) -> str:
        """The prefix for a prompt name; a name the model does not define means no prefix.

        So ``prompt="query"`` gives "query: " on e5 and nothing on bge-m3, and callers never
        need to know which base they run on.
        """
        if not prompt or prompt == "none":
            return ""
        return (self.model.prompts or {}).get(prompt, "")

    def token_counts(self, texts: Sequence[str], prompt: str | None = "query") -> list[int]:
        """Tokens per text, prompt and special tokens included, without truncation."""
        prefix = self.prompt_text(prompt)
        encoded = self.tokenizer([prefix + nfc(t) for t in texts], add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(
        self,
        texts: Sequence[str],
        prompt: str | None = "query",
        dim: int | None = None,
        batch_size: int = 32,
        long: LongMode = "truncate",
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit vectors.

        Args:
            texts: the texts; each must contain something besides white space.
            prompt: a prompt name ("query", "passage") or ``None``/"none".
            dim: keep the first ``dim`` dimensions and renormalise (Matryoshka use).
            batch_size: texts per forward pass.
            long: "truncate" warns about texts over ``max_tokens``; "window" embeds each as the
                length-weighted mean of overlapping ``max_tokens`` windows.
            show_progress: a progress bar on stderr.

        Raises:
            AnlamError: an empty text (its index is named) or a bad ``dim``.
        """
        texts = [nfc(t) for t in texts]
        for i, text in enumerate(texts):
            if not text.strip():
                raise AnlamError(f"text {i + 1}: empty text")
        if dim is not None and not 0 < dim <= self.dim:
            raise AnlamError(f"--dim must be between 1 and {self.dim}, got {dim}")
        if not texts:
            return np.zeros((0, dim or self.dim), dtype=np.float32)
        counts = self.token_counts(texts, prompt)
        too_long = [i for i, n in enumerate(counts) if n > self.max_tokens]
        if too_long and long == "window":
            vectors = self._encode_windows(texts, too_long, prompt, batch_size, show_progress)
        else:
            if too_long:
                logger.warning(
                    "%d text(s) longer than %d tokens (longest %d) were truncated; use long='window' (--long window) to embed all of it",
                    len(too_long), self.max_tokens, max(counts[i] for i in too_long),
                )
            vectors = self._encode(texts, prompt, batch_size, show_progress)
        if dim is not None:
            vectors = vectors[:, :dim]
        return _normalise(vectors)

    def _encode(self, texts: list[str], prompt: str | None, batch_size: int, show_progress: bool) -> np.ndarray:
        prefix = self.prompt_text(prompt)
        out = self.model.encode(
            texts, prompt=prefix, batch_size=batch_size, show_progress_bar=show_progress,
            convert_to_numpy=True, normalize_embeddings=False,
        )
        return np.asarray(out, dtype=np.float32)

    def _encode_windows(
        self, texts: list[str], long_ids: list[int], prompt: str | None, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        """Short texts in one pass; each long text as the mean of overlapping windows."""
        prefix_tokens = len(self.tokenizer(self.prompt_text(prompt), add_special_tokens=False)["input_ids"])
        width = self.max_tokens - prefix_tokens - 2  # room for the prompt and <s> ... </s>
        stride = max(1, width * 3 // 4)  # a quarter of each window overlaps the next
        pieces: list[str] = []
        owners: list[int] = []
        weights: list[int] = []
        long_set = set(long_ids)
        for i, text in enumerate(texts):
            if i not in long_set:
                pieces.append(text)
                owners.append(i)
                weights.append(1)
                continue
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            for start in range(0, max(1, len(ids) - width + stride), stride):
                window = ids[start : start + width]
                pieces.append(self.tokenizer.decode(window))
                owners.append(i)
                weights.append(len(window))
        vectors = self._encode(pieces, prompt, batch_size, show_progress)
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        for vector, owner, weight in zip(vectors, owners, weights):
            out[owner] += weight * vector
        return out


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
