"""Loading and validating sentence-pair files in the ml-paraphrase-tr schema.

The schema is ``sentence_0, sentence_1, label`` with ``label`` a float in [0, 1]. Files may be
CSV, TSV, JSONL, Parquet or a saved ``datasets`` folder; ``columns`` maps other names onto the
schema and ``scale`` divides labels given on another range (5 for STS's 0-5 scores).
Every problem names the file, the data row (1-based, header not counted) and the column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anlam.data.readers import check_columns, read_table
from anlam.errors import AnlamError

PathLike = Path | str
SCHEMA = ("sentence_0", "sentence_1", "label")
_MAX_LISTED = 5


@dataclass
class PairReport:
    """What ``check_pairs`` found: sizes, distributions and every problem."""

    path: str
    rows: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duplicates: int = 0
    label_histogram: dict[str, int] = field(default_factory=dict)
    length_words: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "path": self.path, "rows": self.rows, "ok": self.ok, "errors": self.errors, "warnings": self.warnings,
            "duplicates": self.duplicates, "label_histogram": self.label_histogram, "length_words": self.length_words,
        }


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """``"s1,s2,score"`` -> ``{"s1": "sentence_0", "s2": "sentence_1", "score": "label"}``."""
    if not spec:
        return None
    names = [n.strip() for n in spec.split(",")]
    if len(names) != 3 or not all(names):
        raise AnlamError(f"--columns wants three names 'first,second,label', got {spec!r}")
    return dict(zip(names, SCHEMA))


def _rows(mask: np.ndarray) -> list[int]:
    return (np.flatnonzero(mask) + 1).tolist()


def _listed(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:_MAX_LISTED]))
    return shown + (f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else "")


def _validate(frame: pd.DataFrame, source: str, scale: float | None) -> tuple[pd.DataFrame, PairReport]:
    report = PairReport(source, len(frame))
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        report.errors.append(
            f"{source}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, frame.columns))}; "
            "map yours with --columns first,second,label)"
        )
        return frame, report
    out = pd.DataFrame({c: frame[c] for c in SCHEMA})
    for column in ("sentence_0", "sentence_1"):
        values = out[column].map(lambda v: v if isinstance(v, str) else ("" if v is None else str(v)))
        out[column] = values
        empty = values.str.strip().eq("").to_numpy()
        if empty.any():
            report.errors.append(f"{source}: row {_listed(_rows(empty))}: column {column}: empty sentence")
    labels = pd.to_numeric(out["label"], errors="coerce")
    bad = labels.isna().to_numpy()
    if bad.any():
        report.errors.append(f"{source}: row {_listed(_rows(bad))}: column label: not a number")
    if scale:
        labels = labels / scale
    out["label"] = labels.astype(float)
    outside = (~bad) & ((labels < 0) | (labels > 1)).to_numpy()
    if outside.any():
        hint = "" if scale else " (scores on 0-5? pass --scale 5)"
        report.errors.append(f"{source}: row {_listed(_rows(outside))}: column label: outside [0, 1]{hint}")
    same = (out["sentence_0"].str.strip() == out["sentence_1"].str.strip()).to_numpy() & ~out["sentence_0"].str.strip().eq("").to_numpy()
    if same.any():
        report.errors.append(f"{source}: row {_listed(_rows(same))}: sentence_0 and sentence_1 are identical")
    dup = out.duplicated(subset=["sentence_0", "sentence_1"]).to_numpy()
    report.duplicates = int(dup.sum())
    if report.duplicates:
        report.warnings.append(f"{source}: {report.duplicates} duplicate pair(s), e.g. row {_listed(_rows(dup))}")
    if not bad.all():
        counts, edges = np.histogram(labels[~bad].clip(0, 1), bins=10, range=(0, 1))
        report.label_histogram = {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": int(c) for i, c in enumerate(counts)}
    words = pd.concat([out["sentence_0"], out["sentence_1"]]).str.split().str.len()
    if len(words):
        report.length_words = {"mean": round(float(words.mean()), 2), "median": float(words.median()),
                               "max": int(words.max()), "min": int(words.min())}
    return out, report


def _mapped(path: PathLike, columns: str | dict[str, str] | None) -> pd.DataFrame:
    """The file's table with ``columns`` renamed onto the schema; a mapped name must exist."""
    frame = read_table(path)
    mapping = parse_columns(columns) if isinstance(columns, str) else columns
    if mapping:
        check_columns(path, list(frame.columns), list(mapping), "; check --columns")
        frame = frame.rename(columns=mapping)
    return frame


def check_pairs(path: PathLike, columns: str | dict[str, str] | None = None, scale: float | None = None) -> PairReport:
    """Validate a pair file without raising on content problems (they are in the report)."""
    return _validate(_mapped(path, columns), str(path), scale)[1]


def load_pairs(path: PathLike, columns: str | dict[str, str] | None = None, scale: float | None = None) -> pd.DataFrame:
    """Load a pair file as ``sentence_0, sentence_1, label`` (float in [0, 1]).

    Raises:
        AnlamError: unreadable file, missing column, a non-numeric / NaN / out-of-range label,
            an empty sentence, or identical sentences — naming the file, rows and column.
    """
    out, report = _validate(_mapped(path, columns), str(path), scale)
    if report.errors:
        raise AnlamError("; ".join(report.errors))
    if len(out) == 0:
        raise AnlamError(f"{path}: no pairs")
    return out.reset_index(drop=True)
