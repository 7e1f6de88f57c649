"""``Embedder``: any sentence-transformers folder behind one typed ``encode``.

It adds what every anlam command needs on top of ``SentenceTransformer.encode``: prompt
names that work whether or not a model defines prompts, NFC before tokenising, Matryoshka
truncation with renormalisation, long texts that are never cut silently, texts given as
token ids, and a load that fails when a folder's weights do not fit its model.

Its keywords mean what they mean in ``SentenceTransformer.encode``: ``prompt_name`` names a
prompt ("query", "passage"; ``None``: the model's default prompt), ``prompt`` is the literal
prefix and wins over ``prompt_name`` (``prompt=""``: no prefix), ``truncate_dim`` keeps the first
dimensions. anlam 0.1's keywords (``prompt="query"`` for a name, ``prompt=None`` for no prompt,
``dim=``) are still read, with a ``DeprecationWarning``, until anlam 0.3.

``EmbedderLike`` is what search and the apps use from a model, so a stand-in (a cache, a test
double) can take the ``Embedder``'s place there.

Loading changes no global state (logging, warnings): quietening the libraries is the CLI's
business (``anlam.cli.main``).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from anlam.errors import AnlamError
from anlam.models import shipped
from anlam.models.manifest import MANIFEST
from anlam.text import nfc

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PathLike = Path | str
LongMode = Literal["truncate", "window"]
UNBOUNDED_TOKENS = 1 << 30  # max_tokens of a model with no length limit (static embeddings)
NO_PROMPT_NAMES = ("", "none")  # prompt names that mean "no prompt" ("none" is what the CLI and the server send)
PROMPT_ALIASES = {"passage": ("passage", "document")}  # sentence-transformers models name the passage side either way
PROBE = "öğrenme"  # a word whose tokens show where a text's own tokens sit between the prompt and special tokens
ID_FEATURES = {"input_ids", "attention_mask", "token_type_ids", "modality", "prompt_length"}


class _Unset(enum.Enum):
    """A keyword the caller left out (``prompt=None`` and ``dim=None`` meant something in anlam 0.1)."""

    UNSET = "unset"


_UNSET = _Unset.UNSET


@runtime_checkable
class EmbedderLike(Protocol):
    """What search (``anlam.search.Index``) and the apps use from a model: ``Embedder`` has it, and so
    may a stand-in (a cache of vectors, a hashing test double)."""

    @property
    def path(self) -> str:
        """Where the model was loaded from (folder or hub id); recorded in indexes and cache keys."""
        ...

    @property
    def dim(self) -> int:
        """Output dimension."""
        ...

    def prompt_text(self, prompt_name: str | None = "query") -> str:
        """The prefix a prompt name stands for ("" for none)."""
        ...

    def encode(self, texts: Sequence[str], prompt_name: str | None = "query", *, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        """Unit vectors of ``texts``, one row each (float32)."""
        ...


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


def load_sentence_transformer(model: PathLike | None = None, device: str | None = None) -> SentenceTransformer:
    """Load a ``SentenceTransformer`` from a folder (safetensors only, no remote code).

    Raises:
        AnlamError: the folder cannot be loaded, its weights do not cover its transformer (it
            would embed with random weights), or an exported folder is asked for a device
            other than the CPU.
    """
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(model)
    if (Path(path) / MANIFEST).is_file():  # ONNX / OpenVINO / static export (anlam export)
        from anlam.models.exported import load_exported

        if device and device.split(":")[0] != "cpu":
            raise AnlamError(f"{path}: an exported model runs on the CPU only, not on --device {device}; "
                             "load the original model folder for that device")
        return load_exported(path)
    try:
        st_model = SentenceTransformer(path, device=pick_device(device), trust_remote_code=False,
                                       model_kwargs={"use_safetensors": True})
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{path}: cannot load model ({exc})") from None
    if Path(path).is_dir():
        check_weights(st_model, Path(path))
    return st_model


# BERT's pooler: mean pooling never reads it. A folder saved by sentence-transformers drops the base's
# ``add_pooling_layer: false``, so transformers builds a fresh pooler on load that no file covers.
UNUSED_PREFIXES = ("pooler.",)


def check_weights(st_model: SentenceTransformer, folder: Path) -> None:
    """Raise when a transformer module of ``folder`` left weights uninitialised (missing from its safetensors).

    transformers fills such weights at random and only logs a report, so a folder whose file
    holds other key names would load "fine" and embed noise. A weight counts as missing when
    transformers did not load it (its ``_is_hf_initialized`` mark) and the folder's files hold
    no tensor of that name (with or without the model's prefix): both must agree, so neither a
    renamed-on-load checkpoint nor a change in that private mark can fail a good folder.

    Raises:
        AnlamError: naming the folder, a few missing weights and a few names the file has instead.
    """
    from sentence_transformers.models import Transformer

    try:
        entries = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a bare transformers folder: sentence-transformers built the modules itself
    for entry, module in zip(entries, st_model):
        if not isinstance(module, Transformer):
            continue
        where = folder / entry.get("path", "")
        stored = _stored_tensor_names(where)
        prefix = getattr(module.model, "base_model_prefix", "")
        missing = [name for name, param in module.model.named_parameters()
                   if not name.startswith(UNUSED_PREFIXES) and not getattr(param, "_is_hf_initialized", False)
                   and name not in stored and f"{prefix}.{name}" not in stored]
        if missing:
            names = [name for name, _ in module.model.named_parameters()]
            instead = sorted(stored - set(names) - {f"{prefix}.{name}" for name in names})
            hint = f"; its files hold instead {', '.join(instead[:3])}" if instead else ""
            raise AnlamError(f"{where}: its weights do not cover the model ({len(missing)} of {len(names)} tensors "
                             f"missing, e.g. {', '.join(missing[:3])}{hint}); it would embed with random weights")


def _stored_tensor_names(folder: Path) -> set[str]:
    """Tensor names in a folder's safetensors file(s), read from the headers only."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}))
    from safetensors import safe_open

    names: set[str] = set()
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            names.update(handle.keys())
    return names


def first_unknown_id(ids: Sequence[Sequence[int]], vocab_size: int) -> tuple[int, int] | None:
    """``(text, position)`` of the first token id outside ``0 .. vocab_size - 1``, or ``None``."""
    for i, row in enumerate(ids):
        for j, token in enumerate(row):
            if not 0 <= token < vocab_size:
                return i, j
    return None


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _deprecated(old: str, new: str) -> None:
    """Warn at the caller of the public ``Embedder`` method (``_deprecated`` <- ``_resolve`` <- method <- caller)."""
    warnings.warn(f"Embedder: {old} is deprecated and will stop working in anlam 0.3; use {new} "
                  "(sentence-transformers' keywords)", DeprecationWarning, stacklevel=4)


class Embedder:
    """A loaded embedding model with anlam's encode conventions.

    Attributes:
        model: the underlying ``SentenceTransformer``.
        path: where it was loaded from (folder or hub id).
    """

    def __init__(self, model: SentenceTransformer, path: str) -> None:
        self.model = model
        self.path = path
        self._vocab_size: int | None = None
        self._wrapped_tokenizer: Any = None
        self._frames: dict[str, tuple[list[int], list[int]]] = {}  # prompt prefix -> ids around a text's ids
        self._id_templates: dict[str, dict[str, Any]] = {}  # prompt prefix -> the first module's features for a text

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
        return int(self.model.get_embedding_dimension() or 0)

    @property
    def max_tokens(self) -> int:
        """Longest input, in tokens including special tokens, the model reads in one pass."""
        length = self.model.max_seq_length
        return int(length) if length is not None and math.isfinite(length) else UNBOUNDED_TOKENS

    @property
    def tokenizer(self) -> Any:
        """A Hugging Face fast tokenizer (a static model's bare ``tokenizers.Tokenizer`` is wrapped once)."""
        tokenizer = self.model.tokenizer
        if not callable(tokenizer):
            if self._wrapped_tokenizer is None:
                from transformers import PreTrainedTokenizerFast

                self._wrapped_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
            return self._wrapped_tokenizer
        return tokenizer

    def prompt_text(self, prompt_name: str | None = "query", *, prompt: str | None | _Unset = _UNSET) -> str:
        """The prefix a call with ``prompt_name`` / ``prompt`` puts before each text.

        ``prompt`` is returned as it is (it is the prefix). A name is looked up in the model's
        prompts: "" and "none" mean no prompt, ``None`` the model's default prompt (none unless it
        sets ``default_prompt_name``), as in sentence-transformers. A model without prompts (none,
        or only the empty "query"/"document" that sentence-transformers fills in) reads every name
        as no prefix, so ``prompt_name="query"`` gives "query: " on e5 and nothing on bge-m3 and
        callers never need to know which base they run on. A model with prompts must define the
        name ("passage" also finds a "document" prompt; a model that defines only "query" reads
        passages bare, the usual asymmetric setup).

        Raises:
            AnlamError: the model defines prompts, but not this one (its prompts are listed).
        """
        return self._resolve(prompt_name, prompt)[0]

    def _resolve(self, prompt_name: str | None, prompt: str | None | _Unset, truncate_dim: int | None = None,
                 dim: int | None | _Unset = _UNSET) -> tuple[str, int | None]:
        """The prefix and the truncation a call asks for; anlam 0.1's ``prompt=NAME``, ``prompt=None``
        and ``dim=`` are read as they were meant, with a ``DeprecationWarning``.

        Raises:
            AnlamError: an unknown prompt name (``prompt_text``) or a dimension outside ``1 .. dim``.
        """
        if not isinstance(dim, _Unset):
            _deprecated("dim=", "truncate_dim=")
            if truncate_dim is not None and dim is not None and truncate_dim != dim:
                raise TypeError(f"Embedder: dim={dim} and truncate_dim={truncate_dim} disagree; pass truncate_dim only")
            truncate_dim = dim if truncate_dim is None else truncate_dim
        if truncate_dim is not None and not 0 < truncate_dim <= self.dim:
            raise AnlamError(f"truncate_dim (--dim) must be between 1 and {self.dim}, got {truncate_dim}")
        if isinstance(prompt, _Unset):
            return self._named_prefix(prompt_name), truncate_dim
        if prompt is None:
            _deprecated("prompt=None (no prompt)", 'prompt="" (no prefix), or leave prompt out to use prompt_name')
            return "", truncate_dim
        if prompt in self._known_prompt_names():
            _deprecated(f"prompt={prompt!r} (a prompt name)", f"prompt_name={prompt!r}; prompt= is the literal prefix")
            return self._named_prefix(prompt), truncate_dim
        return prompt, truncate_dim

    def _known_prompt_names(self) -> set[str]:
        """Names anlam 0.1's ``prompt=`` took: the model's prompts, the usual ones and "none"."""
        return {"none", "query", "passage", "document", *(self.model.prompts or {})}

    def _named_prefix(self, name: str | None) -> str:
        if name is None:
            name = getattr(self.model, "default_prompt_name", None)
        if name is None or name in NO_PROMPT_NAMES:
            return ""
        defined = {key: text for key, text in (self.model.prompts or {}).items() if text}
        if not defined:
            return ""
        for key in PROMPT_ALIASES.get(name, (name,)):
            if key in defined:
                return defined[key]
        if name == "passage" and "query" in defined:
            return ""
        raise AnlamError(f"{self.path}: no prompt named {name!r}; this model defines "
                         f"{', '.join(map(repr, defined))} (or 'none' for no prompt)")

    def token_counts(self, texts: Sequence[str], prompt_name: str | None = "query", *,
                     prompt: str | None | _Unset = _UNSET) -> list[int]:
        """Tokens per text, prompt and special tokens included, without truncation."""
        return self._token_counts(texts, self._resolve(prompt_name, prompt)[0])

    def _token_counts(self, texts: Sequence[str], prefix: str) -> list[int]:
        # an exported model may encode on several threads at once (anlam serve): tokenise under its lock
        with getattr(self.model[0], "tokenizer_lock", nullcontext()):
            encoded = self.tokenizer([prefix + nfc(t) for t in texts], add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _token_counts_near_limit(self, texts: Sequence[str], prefix: str) -> list[int]:
        """``token_counts`` for the texts that may be over ``max_tokens``; 0 for those that cannot be.

        Tokenising costs as much as the model's own tokenising pass, so texts that provably fit are
        not tokenised twice: every token covers at least one byte of the normalised text
        (SentencePiece, WordPiece and byte-level BPE alike), so a text has at most its normalised
        UTF-8 length + 1 (a leading word marker) + the special tokens.
        """
        if self.max_tokens >= UNBOUNDED_TOKENS:
            return [0] * len(texts)
        normalizer = getattr(getattr(self.tokenizer, "backend_tokenizer", None), "normalizer", None)
        if normalizer is None:
            return self._token_counts(texts, prefix)
        room = self.max_tokens - 1 - self.tokenizer.num_special_tokens_to_add(pair=False)
        maybe = [i for i, text in enumerate(texts) if len(normalizer.normalize_str(prefix + text).encode("utf-8")) > room]
        counts = [0] * len(texts)
        for i, n in zip(maybe, self._token_counts([texts[i] for i in maybe], prefix) if maybe else []):
            counts[i] = n
        return counts

    @property
    def parallel_batches(self) -> int:
        """How many ``encode`` calls may run at once: an exported model's streams (``anlam serve``
        sets them), else 1 (a torch model's tokenizer and thread pool are not shared safely)."""
        return int(getattr(self.model[0], "streams", 1))

    @property
    def vocab_size(self) -> int:
        """Token ids this model's tokenizer knows (``0 .. vocab_size - 1``), added tokens included."""
        if self._vocab_size is None:
            self._vocab_size = len(self.tokenizer)
        return self._vocab_size

    @property
    def takes_token_ids(self) -> bool:
        """Whether ``encode_ids`` works: the first module reads ``input_ids`` + ``attention_mask``.

        True for transformer models and ONNX / OpenVINO exports; static embeddings read text only.
        """
        return set(self._id_template("")) <= ID_FEATURES

    def model_input_ids(self, ids: Sequence[Sequence[int]], prompt_name: str | None = "query", *,
                        prompt: str | None | _Unset = _UNSET) -> list[list[int]]:
        """The ids the model reads for texts given as token ids, before any truncation.

        Each text's ids are those ``tokenizer(text, add_special_tokens=False)`` gives; the prompt's
        tokens and the model's special tokens go around them where the tokenizer puts them for
        ``prompt + text`` (a leading/trailing special token already present is not doubled), so a
        text and its ids get the same embedding.

        Raises:
            AnlamError: an empty text or an id outside the vocabulary (text and position named).
        """
        return self._input_ids(ids, self._resolve(prompt_name, prompt)[0])

    def _input_ids(self, ids: Sequence[Sequence[int]], prefix: str) -> list[list[int]]:
        bad = first_unknown_id(ids, self.vocab_size)
        if bad is not None:
            i, j = bad
            raise AnlamError(f"text {i + 1}, token {j + 1}: id {ids[i][j]} is not in the vocabulary "
                             f"(0 to {self.vocab_size - 1})")
        head, tail = self._frame(prefix)
        special_head, special_tail = self._frame("")
        rows = []
        for i, given in enumerate(ids):
            row = list(given)
            if special_head and row[: len(special_head)] == special_head:
                row = row[len(special_head):]
            if special_tail and row[-len(special_tail):] == special_tail:
                row = row[: -len(special_tail)]
            if not row:
                raise AnlamError(f"text {i + 1}: no token ids")
            rows.append(head + row + tail)
        return rows

    def encode_ids(
        self,
        ids: Sequence[Sequence[int]],
        prompt_name: str | None = "query",
        *,
        prompt: str | None | _Unset = _UNSET,
        truncate_dim: int | None = None,
        batch_size: int = 32,
        dim: int | None | _Unset = _UNSET,
    ) -> np.ndarray:
        """Embed texts given as token ids (see ``model_input_ids``) into unit vectors, like ``encode``.

        Ids beyond ``max_tokens`` are cut, keeping the closing special tokens, as the tokenizer
        cuts a text; a warning says so. ``dim`` is the deprecated name of ``truncate_dim``.

        Raises:
            AnlamError: see ``model_input_ids``; a bad ``truncate_dim``; a model that reads text only.
        """
        import torch
        from sentence_transformers.util import batch_to_device

        prefix, truncate_dim = self._resolve(prompt_name, prompt, truncate_dim, dim)
        if not self.takes_token_ids:
            raise AnlamError(f"{self.path}: this model reads text only, not token ids")
        rows = self._input_ids(ids, prefix)
        if not rows:
            return np.zeros((0, truncate_dim or self.dim), dtype=np.float32)
        tail = self._frame(prefix)[1]
        longest = max(map(len, rows))
        if longest > self.max_tokens:
            logger.warning("%d input(s) longer than %d tokens (longest %d) were truncated",
                           sum(len(r) > self.max_tokens for r in rows), self.max_tokens, longest)
            keep = self.max_tokens - len(tail)
            rows = [r if len(r) <= self.max_tokens else r[:keep] + tail for r in rows]
        template = self._id_template(prefix)
        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                padded = self.tokenizer.pad({"input_ids": rows[start : start + batch_size]}, return_tensors="pt")
                features = {key: padded[key] if key in padded
                            else torch.zeros_like(padded["input_ids"]) if key == "token_type_ids" else value
                            for key, value in template.items()}
                features = batch_to_device(features, self.model.device)
                out.append(self.model(features)["sentence_embedding"].float().cpu().numpy())
        vectors = np.concatenate(out)
        if truncate_dim is not None:
            vectors = vectors[:, :truncate_dim]
        return normalise(vectors)

    def _frame(self, prefix: str) -> tuple[list[int], list[int]]:
        """Ids before and after a text's own ids under ``prefix``: special tokens and the prompt's tokens.

        Read off the tokenizer: the special tokens around PROBE, and the tokens of ``prefix + PROBE``
        before PROBE's own (a prompt's trailing space belongs to the next word: "query: " + "x"
        gives "▁que ry : ▁x", not the "▁que ry : ▁" of the prompt alone).
        """
        if prefix not in self._frames:
            tokenizer = self.tokenizer
            bare = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
            whole = tokenizer(PROBE, add_special_tokens=True)["input_ids"]
            start = next((k for k in range(len(whole) - len(bare) + 1) if whole[k : k + len(bare)] == bare), None)
            if start is None:
                raise AnlamError(f"{self.path}: its tokenizer changes a text's tokens when adding special tokens; "
                                 "token ids cannot be placed")
            head, tail = whole[:start], whole[start + len(bare):]
            if prefix:
                prompted = tokenizer(prefix + PROBE, add_special_tokens=False)["input_ids"]
                if prompted[-len(bare):] == bare:
                    head = head + prompted[: -len(bare)]
                else:  # no space between prompt and text: its last word fuses with the text's first
                    head = head + tokenizer(prefix, add_special_tokens=False)["input_ids"]
            self._frames[prefix] = head, tail
        return self._frames[prefix]

    def _id_template(self, prefix: str) -> dict[str, Any]:
        """The features the first module hands on for a text (``preprocess``): keys and constant values."""
        if prefix not in self._id_templates:
            self._id_templates[prefix] = dict(self.model.preprocess([PROBE], prompt=prefix or None))
        return self._id_templates[prefix]

    def encode(
        self,
        texts: Sequence[str],
        prompt_name: str | None = "query",
        *,
        prompt: str | None | _Unset = _UNSET,
        truncate_dim: int | None = None,
        batch_size: int = 32,
        long: LongMode = "truncate",
        show_progress: bool = False,
        dim: int | None | _Unset = _UNSET,
    ) -> np.ndarray:
        """Embed ``texts`` into an ``(n, truncate_dim or dim)`` float32 array of unit vectors.

        Args:
            texts: the texts; each must contain something besides white space.
            prompt_name: a prompt name ("query", "passage"; "none" for no prompt; ``None`` for the
                model's default prompt), see ``prompt_text``.
            prompt: the literal prefix (e.g. "query: "; "" for none); wins over ``prompt_name``.
            truncate_dim: keep the first ``truncate_dim`` dimensions and renormalise (Matryoshka use).
            batch_size: texts per forward pass.
            long: "truncate" warns about texts over ``max_tokens``; "window" embeds each as the
                length-weighted mean of overlapping ``max_tokens`` windows.
            show_progress: a progress bar on stderr.
            dim: the deprecated name of ``truncate_dim`` (a ``DeprecationWarning``).

        Raises:
            AnlamError: an empty text (its index is named), an unknown prompt name or a bad ``truncate_dim``.
        """
        prefix, truncate_dim = self._resolve(prompt_name, prompt, truncate_dim, dim)
        texts = [nfc(t) for t in texts]
        for i, text in enumerate(texts):
            if not text.strip():
                raise AnlamError(f"text {i + 1}: empty text")
        if not texts:
            return np.zeros((0, truncate_dim or self.dim), dtype=np.float32)
        counts = self._token_counts_near_limit(texts, prefix)
        too_long = [i for i, n in enumerate(counts) if n > self.max_tokens]
        if too_long and long == "window":
            vectors = self._encode_windows(texts, too_long, prefix, batch_size, show_progress)
        else:
            if too_long:
                logger.warning(
                    "%d text(s) longer than %d tokens (longest %d) were truncated; use long='window' (--long window) to embed all of it",
                    len(too_long), self.max_tokens, max(counts[i] for i in too_long),
                )
            vectors = self._encode(texts, prefix, batch_size, show_progress)
        if truncate_dim is not None:
            vectors = vectors[:, :truncate_dim]
        return normalise(vectors)

    def _encode(self, texts: list[str], prefix: str, batch_size: int, show_progress: bool) -> np.ndarray:
        out = self.model.encode(
            texts, prompt=prefix, batch_size=batch_size, show_progress_bar=show_progress,
            convert_to_numpy=True, normalize_embeddings=False,
        )
        return np.asarray(out, dtype=np.float32)

    def _encode_windows(
        self, texts: list[str], long_ids: list[int], prefix: str, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        """Short texts in one pass; each long text as the mean of overlapping windows."""
        prefix_tokens = len(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])
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
        vectors = self._encode(pieces, prefix, batch_size, show_progress)
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        for vector, owner, weight in zip(vectors, owners, weights):
            out[owner] += weight * vector
        return out
