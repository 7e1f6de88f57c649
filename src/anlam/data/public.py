"""Loaders for the public Turkish sets shipped in ``anlam/data/public`` (see its README)."""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

from anlam.errors import AnlamError

_PUBLIC = files("anlam.data").joinpath("public")


def _read(name: str, split: str, splits: tuple[str, ...]) -> pd.DataFrame:
    if split not in splits:
        raise AnlamError(f"{name} has no split {split!r} (choose from {', '.join(splits)})")
    with _PUBLIC.joinpath(name, f"{split}.csv").open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, keep_default_na=False)


def stsb_tr(split: str = "test") -> pd.DataFrame:
    """STSb-TR as ``sentence_0, sentence_1, label`` with the 0-5 score scaled to 0-1."""
    raw = _read("stsb-tr", split, ("train", "dev", "test"))
    return pd.DataFrame(
        {"sentence_0": raw["sentence1_tr"], "sentence_1": raw["sentence2_tr"], "label": raw["score"].astype(float) / 5.0}
    )


def tqp(split: str = "dev") -> pd.DataFrame:
    """TQP question paraphrases as ``sentence_0, sentence_1, label`` (all label 1.0)."""
    raw = _read("tqp", split, ("train", "dev"))
    return pd.DataFrame({"sentence_0": raw["input"], "sentence_1": raw["target"], "label": 1.0})
