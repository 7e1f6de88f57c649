"""Run an exported folder inside sentence-transformers: ONNX Runtime or OpenVINO as the first module.

sentence-transformers 6 runs ONNX and OpenVINO only through optimum, whose exporters still pin
transformers below 5. ``ExportedTransformer`` is the small stand-in: it tokenises like the
``Transformer`` module did, runs the exported graph and hands ``token_embeddings`` to the
folder's own Pooling / Normalize (/ Dense) modules, so ``SentenceTransformer.encode`` and
everything built on it (``Embedder``, search, the server) work unchanged.

An exported folder holds ``anlam_export.json`` (the manifest), the graph, the tokenizer and
the remaining sentence-transformers modules.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.modules.input_module import InputModule

from anlam.errors import AnlamError

logger = logging.getLogger(__name__)

PathLike = Path | str
MANIFEST = "anlam_export.json"
MODULE_TYPE = "anlam.export.runtime.ExportedTransformer"


def read_manifest(folder: PathLike) -> dict | None:
    """The folder's export manifest, or ``None`` for an ordinary model folder."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{path}: unreadable export manifest ({exc})") from None


class ExportedTransformer(InputModule):
    """Tokenizer + ONNX Runtime session or OpenVINO compiled model, producing ``token_embeddings``."""

    save_in_root = True

    def __init__(self, folder: PathLike, manifest: dict | None = None) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.manifest = manifest or read_manifest(self.folder)
        if not self.manifest or self.manifest.get("runtime") not in ("onnxruntime", "openvino"):
            raise AnlamError(f"{self.folder}: not an ONNX or OpenVINO export (no {MANIFEST})")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.max_seq_length = int(self.manifest["max_seq_length"])
        self.input_names: list[str] = list(self.manifest["inputs"])
        self._lock = threading.Lock()
        try:
            self._run = self._onnxruntime() if self.manifest["runtime"] == "onnxruntime" else self._openvino()
        except Exception as exc:  # the runtimes raise their own exception types for a missing or broken graph
            raise AnlamError(f"{self.folder / self.manifest['file']}: cannot load ({exc})") from None

    def _onnxruntime(self):
        import onnxruntime as ort

        session = ort.InferenceSession(str(self.folder / self.manifest["file"]), providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]

    def _openvino(self):
        import openvino as ov

        compiled = ov.Core().compile_model(str(self.folder / self.manifest["file"]), "CPU",
                                           {"PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            with self._lock:  # one infer request, and a server may call from several threads
                return np.array(request.infer(feeds)[0], copy=True)

        return run

    def preprocess(self, inputs: list[str], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        texts = [(prompt or "") + text for text in inputs]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                 return_tensors="pt")
        return {name: encoded[name] for name in self.input_names}

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        feeds = {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names}
        features["token_embeddings"] = torch.from_numpy(self._run(feeds).astype(np.float32, copy=False))
        return features

    def get_embedding_dimension(self) -> int:
        return int(self.manifest["hidden_size"])

    def get_word_embedding_dimension(self) -> int:
        return self.get_embedding_dimension()

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        import shutil

        out = Path(output_path)
        for name in [self.manifest["file"], *self.manifest.get("extra_files", []), MANIFEST]:
            shutil.copy2(self.folder / name, out / name)
        self.tokenizer.save_pretrained(str(out))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> ExportedTransformer:
        return cls(Path(model_name_or_path) / subfolder)


def load_exported(folder: PathLike):
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
    modules = []
    for entry in entries:
        if entry["type"] == MODULE_TYPE:
            modules.append(ExportedTransformer(folder, manifest))
            continue
        if not entry["type"].startswith("sentence_transformers."):
            raise AnlamError(f"{folder}/modules.json: refusing to import module type {entry['type']!r}")
        module_class = import_from_string(entry["type"])
        if len(inspect.signature(module_class.load).parameters) == 1:  # an old-style module: load(path)
            modules.append(module_class.load(str(folder / entry["path"])))
        else:
            modules.append(module_class.load(str(folder), subfolder=entry["path"]))
    return SentenceTransformer(
        modules=modules, device="cpu", prompts=settings.get("prompts") or {},
        default_prompt_name=settings.get("default_prompt_name"),
        similarity_fn_name=settings.get("similarity_fn_name"),
    )
