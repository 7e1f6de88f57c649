"""Run an exported folder inside sentence-transformers: ONNX Runtime or OpenVINO as the first module.

sentence-transformers 6 runs ONNX and OpenVINO only through optimum, whose exporters still pin
transformers below 5. ``ExportedTransformer`` is the small stand-in: it tokenises like the
``Transformer`` module did, runs the exported graph and hands ``token_embeddings`` to the
folder's own Pooling / Normalize (/ Dense) modules, so ``SentenceTransformer.encode`` and
everything built on it (``Embedder``, search, the server) work unchanged.

An exported folder holds ``anlam_export.json`` (the manifest, read by ``anlam.models.manifest``),
the graph, the tokenizer and the remaining sentence-transformers modules. Its ``modules.json`` names
this module's class (``MODULE_TYPE``); exports written before it moved here name
``anlam.export.runtime.ExportedTransformer`` and load the same.

Speed in a fresh process (``anlam encode``, ``anlam index build``): OpenVINO prepares its kernels
the first time it meets an input shape, and a length-sorted ``encode`` meets a new sequence length
in nearly every batch, so a one-shot process paid that work on every batch. OpenVINO batches are
therefore padded up to a multiple of ``PAD_MULTIPLE`` tokens (never past the model's maximum):
a thousand texts meet a handful of shapes, and the int8 kernels run as fast on 16-token multiples
as on the exact lengths. ONNX Runtime has no per-shape work, so its batches keep their exact
length (padding only adds work there). OpenVINO keeps its compiled model in
``$ANLAM_HOME/cache/openvino``, so a later process skips most of the compile. Both runtimes use
as many threads as torch does (``anlam serve --threads``).
"""

from __future__ import annotations

import inspect
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.modules.input_module import InputModule

from anlam.errors import AnlamError
from anlam.models.manifest import (
    LEGACY_MODULE_TYPES,
    MANIFEST,
    MODULE_TYPE,
    OPENVINO_CONFIG,
    PAD_MULTIPLE,
    read_manifest,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

PathLike = Path | str


def openvino_cache_dir() -> Path:
    """Where OpenVINO keeps compiled models between processes: ``$ANLAM_HOME/cache/openvino``."""
    from anlam.models.base import anlam_home

    return anlam_home() / "cache" / "openvino"


_runtime_threads: int | None = None
_runtime_streams = 1


def set_runtime_threads(threads: int | None, streams: int = 1) -> None:
    """Threads, and streams (forward passes that may run at once), for the ONNX Runtime / OpenVINO
    models loaded after this call; ``threads=None``: torch's count.

    ``anlam serve`` runs one OpenVINO stream per core this way, so two batches run side by side
    (see ``cli/serve.py``). Streams change how passes are scheduled, never the numbers they give.
    """
    global _runtime_threads, _runtime_streams
    _runtime_threads, _runtime_streams = threads, max(1, streams)


def _threads() -> int:
    """The runtimes' thread count: ``set_runtime_threads``'s, else torch's (``anlam serve --threads``
    sets both; default one per core)."""
    return max(1, _runtime_threads or torch.get_num_threads())


class ExportedTransformer(InputModule):
    """Tokenizer + ONNX Runtime session or OpenVINO compiled model, producing ``token_embeddings``."""

    save_in_root = True

    def __init__(self, folder: PathLike, manifest: dict | None = None) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        manifest = manifest or read_manifest(self.folder)
        if not manifest or manifest.get("runtime") not in ("onnxruntime", "openvino"):
            raise AnlamError(f"{self.folder}: not an ONNX or OpenVINO export (no {MANIFEST})")
        self.manifest: dict[str, Any] = manifest
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(str(self.folder))
        self.max_seq_length = int(self.manifest["max_seq_length"])
        self.input_names: list[str] = list(self.manifest["inputs"])
        self.pads_to_buckets = self.manifest["runtime"] == "openvino"
        # a Hugging Face fast tokenizer raises "Already borrowed" when two threads use it while one
        # changes its truncation settings; held by everything that tokenises with it (Embedder too)
        self.tokenizer_lock = threading.Lock()
        self.streams = _runtime_streams  # forward passes that may run at once (one infer request each)
        try:
            self._run = self._onnxruntime() if self.manifest["runtime"] == "onnxruntime" else self._openvino()
        except Exception as exc:  # the runtimes raise their own exception types for a missing or broken graph
            raise AnlamError(f"{self.folder / self.manifest['file']}: cannot load ({exc})") from None

    def _onnxruntime(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, _threads() // self.streams)  # run() is safe across threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(self.folder / self.manifest["file"]), options,
                                       providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]

    def _openvino(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import openvino as ov

        config: dict[str, Any] = {**OPENVINO_CONFIG, "INFERENCE_NUM_THREADS": _threads()}
        if self.streams > 1:  # several passes at once, a stream (and an infer request) each
            config = {**config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}
        cache = openvino_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache)
        except OSError as exc:  # a read-only home: compile every time, as before
            logger.info("no OpenVINO model cache (%s)", exc.strerror or exc)
        compiled = ov.Core().compile_model(str(self.folder / self.manifest["file"]), "CPU", config)
        idle: queue.SimpleQueue = queue.SimpleQueue()  # one request per stream; a caller waits for a free one
        for _ in range(self.streams):
            idle.put(compiled.create_infer_request())

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            request = idle.get()
            try:
                return np.array(request.infer(feeds)[0], copy=True)
            finally:
                idle.put(request)

        return run

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor | Any]:
        texts = [(prompt or "") + text for text in inputs]
        with self.tokenizer_lock:
            encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                     return_tensors="np")
        return {name: torch.from_numpy(array) for name, array in self._bucket(encoded).items()}

    def _bucket(self, encoded: Any) -> dict[str, np.ndarray]:
        """The batch as int64 arrays, for OpenVINO padded to a multiple of ``PAD_MULTIPLE`` tokens (at most
        ``max_seq_length``): few distinct shapes."""
        width = encoded["input_ids"].shape[1]
        multiple = PAD_MULTIPLE if self.pads_to_buckets else 1
        target = max(width, min(-(-width // multiple) * multiple, self.max_seq_length))
        left = self.tokenizer.padding_side == "left"
        out = {}
        for name in self.input_names:
            array = encoded[name]
            if target > width:
                fill = self.tokenizer.pad_token_id if name == "input_ids" else 0
                pad = ((0, 0), (target - width, 0) if left else (0, target - width))
                array = np.pad(array, pad, constant_values=fill or 0)
            out[name] = array.astype(np.int64, copy=False)
        return out

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        feeds = {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names}
        features["token_embeddings"] = torch.from_numpy(self._run(feeds).astype(np.float32, copy=False))
        return features

    def get_embedding_dimension(self) -> int:
        return int(self.manifest["hidden_size"])

    def get_word_embedding_dimension(self) -> int:
        return self.get_embedding_dimension()

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        import shutil

        out = Path(output_path)
        for name in [self.manifest["file"], *self.manifest.get("extra_files", []), MANIFEST]:
            shutil.copy2(self.folder / name, out / name)
        self.tokenizer.save_pretrained(str(out))

    @classmethod
    def load(  # type: ignore[override]  # the hub options Module.load names mean nothing for a local export
        cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any
    ) -> ExportedTransformer:
        return cls(Path(model_name_or_path) / subfolder)


def load_exported(folder: PathLike) -> SentenceTransformer:
    """A ``SentenceTransformer`` running an exported folder on CPU.

    ONNX and OpenVINO folders are assembled here (their first module is anlam's, which
    sentence-transformers 6 only imports under ``trust_remote_code``); static folders are
    plain sentence-transformers folders (``StaticEmbedding`` -> ``Normalize``).

    Raises:
        AnlamError: the folder is not a complete export.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import import_from_string

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise AnlamError(f"{folder}: not an exported model (no {MANIFEST})")
    if manifest.get("runtime") == "model2vec":
        return SentenceTransformer(str(folder), device="cpu", trust_remote_code=False)
    try:
        entries = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        settings = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{folder}: incomplete export ({exc})") from None
    modules: list[torch.nn.Module] = []
    for entry in entries:
        if entry["type"] in (MODULE_TYPE, *LEGACY_MODULE_TYPES):
            modules.append(ExportedTransformer(folder, manifest))
            continue
        if not entry["type"].startswith("sentence_transformers."):
            raise AnlamError(f"{folder}/modules.json: refusing to import module type {entry['type']!r}")
        module_class: Any = import_from_string(entry["type"])
        if len(inspect.signature(module_class.load).parameters) == 1:  # an old-style module: load(path)
            modules.append(module_class.load(str(folder / entry["path"])))
        else:
            modules.append(module_class.load(str(folder), subfolder=entry["path"]))
    return SentenceTransformer(
        modules=modules, device="cpu", prompts=settings.get("prompts") or {},
        default_prompt_name=settings.get("default_prompt_name"),
        similarity_fn_name=settings.get("similarity_fn_name"),
    )
