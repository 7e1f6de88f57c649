"""Data: reading texts and documents from files, pair files (validated), the ML-TR corpus and the public Turkish sets.

``mltr_*`` read the built ML-TR sets shipped in ``anlam/data/mltr`` (rebuild them with
``anlam data build --out src/anlam/data/mltr --overwrite``); ``load_pairs`` reads a user's own pair file.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pandas as pd

from anlam.data.bank import Concept, load_bank
from anlam.data.builder import GRADE_RANGES, SPLITS, build_all, write_all
from anlam.data.pairs import PairReport, check_pairs, load_pairs, parse_columns
from anlam.data.public import stsb_tr, tqp
from anlam.data.readers import Document, read_columns, read_documents, read_records, read_table, read_texts
from anlam.errors import AnlamError
from anlam.io import DATA_BUILD, check_output_folder

__all__ = [
    "GRADE_RANGES",
    "SPLITS",
    "Concept",
    "Document",
    "PairReport",
    "build_corpus",
    "check_pairs",
    "load_bank",
    "load_pairs",
    "mltr_clustering",
    "mltr_dir",
    "mltr_pairs",
    "mltr_retrieval",
    "mltr_triplets",
    "parse_columns",
    "read_columns",
    "read_documents",
    "read_records",
    "read_table",
    "read_texts",
    "stsb_tr",
    "tqp",
]


def mltr_dir() -> Path:
    """Where the built ML-TR sets ship inside the package."""
    return Path(str(files("anlam.data").joinpath("mltr")))


def _split_file(name: str, split: str, data_dir: Path | None) -> Path:
    if split not in SPLITS:
        raise AnlamError(f"ML-TR has no split {split!r} (choose from {', '.join(SPLITS)})")
    path = (data_dir or mltr_dir()) / name.format(split=split)
    if not path.exists():
        raise AnlamError(f"{path}: missing; build it with `anlam data build --out {path.parent}`")
    return path


def mltr_pairs(split: str = "test", data_dir: Path | None = None) -> pd.DataFrame:
    """Graded pairs: ``sentence_0, sentence_1, label, grade, concept_0, concept_1``."""
    return pd.read_parquet(_split_file("pairs-{split}.parquet", split, data_dir))


def mltr_triplets(split: str = "train", data_dir: Path | None = None) -> pd.DataFrame:
    """Hard-negative triplets: ``anchor, positive, negative``."""
    return pd.read_parquet(_split_file("triplets-{split}.parquet", split, data_dir))


def mltr_retrieval(split: str = "test", data_dir: Path | None = None) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """``(queries, corpus, qrels)``: user questions -> the definition answering each."""
    data = json.loads(_split_file("retrieval-{split}.json", split, data_dir).read_text(encoding="utf-8"))
    return data["queries"], data["corpus"], {q: set(docs) for q, docs in data["qrels"].items()}


def mltr_clustering(split: str = "test", data_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """``(sentences, labels)`` with the subfield as label."""
    frame = pd.read_parquet(_split_file("clustering-{split}.parquet", split, data_dir))
    return frame["sentence"].tolist(), frame["label"].tolist()


def build_corpus(out_dir: Path | str, bank: Path | str | None = None, seed: int = 42, overwrite: bool = False) -> dict:
    """Build every ML-TR set from the bank into the new folder ``out_dir``.

    The shipped sets are rebuilt with ``out_dir=mltr_dir(), overwrite=True``; an earlier build
    is replaced only with ``overwrite`` (see ``anlam.io.output_folder``). Returns the datasheet
    statistics.
    """
    check_output_folder(out_dir, DATA_BUILD, overwrite, [bank])
    concepts = load_bank(bank)
    built = build_all(concepts, seed)
    out = write_all(built, Path(out_dir), concepts, seed, overwrite, [bank])
    return json.loads((out / "stats.json").read_text(encoding="utf-8"))
