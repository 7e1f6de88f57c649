"""Paraphrase probability from cosine similarity, and near-duplicate groups in a corpus.

A raw cosine means different things on different models (e5 puts almost every pair above
0.7), so anlam maps it to a probability with a logistic curve fitted on labelled pairs and
keeps the decision threshold that maximised F1 there. Both live in the model folder as
``anlam_calibration.json``; without it the ML-TR dev split (paraphrase pairs vs all others)
is used and the result cached: in the model folder, or (for a server, which only reads its
model) under ``$ANLAM_HOME/calibrations`` keyed by the model folder's checksum.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from anlam.data import read_columns
from anlam.errors import AnlamError
from anlam.io import check_output_file, read_text_file, write_json
from anlam.models import Embedder, EmbedderLike
from anlam.models.checksum import model_checksum
from anlam.text import search_key

logger = logging.getLogger(__name__)

PathLike = Path | str
Pair = tuple[str, str]

CALIBRATION_FILE = "anlam_calibration.json"
# calibrations of the built-in models (by checksum), fitted once with `default_calibration`, so a
# fresh install's first `anlam serve` or `anlam paraphrase` does not spend minutes fitting them
SHIPPED_CALIBRATIONS = Path(__file__).resolve().parent.parent / "data" / "calibrations"
PAIR_COLUMNS = ("sentence_0", "sentence_1", "label")


@dataclass(frozen=True)
class Calibration:
    """``probability = sigmoid(weight * cosine + bias)``; a pair is a paraphrase at ``probability >= threshold``.

    Attributes:
        weight, bias: the logistic curve over cosine similarity.
        threshold: decision threshold on the probability (the F1-best cut on the calibration pairs).
        prompt: prompt name the cosines were computed with.
        pairs, positives: size of the calibration set.
        f1: F1 at ``threshold`` on the calibration pairs.
        auc: ROC AUC of cosine on the calibration pairs (0.5 = the model cannot tell them apart).
        source: where the pairs came from.
    """

    weight: float
    bias: float
    threshold: float
    prompt: str = "query"
    pairs: int = 0
    positives: int = 0
    f1: float | None = None
    auc: float | None = None
    source: str = ""

    def probability(self, cosines: np.ndarray | Sequence[float]) -> np.ndarray:
        z = self.weight * np.asarray(cosines, dtype=np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    @property
    def cosine_threshold(self) -> float:
        """The cosine at which the probability reaches ``threshold``."""
        return self.cosine_at(self.threshold)

    def cosine_at(self, probability: float) -> float:
        """The cosine at which the curve reaches ``probability`` (0 < probability < 1)."""
        if not 0.0 < probability < 1.0:
            raise AnlamError(f"threshold must be between 0 and 1 (exclusive), got {probability}")
        return (math.log(probability / (1.0 - probability)) - self.bias) / self.weight

    def with_threshold(self, probability: float) -> Calibration:
        """The same curve deciding at ``probability`` instead (checked to lie in (0, 1))."""
        self.cosine_at(probability)
        return replace(self, threshold=float(probability))

    def to_dict(self) -> dict:
        return {"version": 1, "method": "logistic-cosine", **asdict(self), "cosine_threshold": self.cosine_threshold}

    def save(self, folder: PathLike) -> Path:
        """Write ``anlam_calibration.json`` into the model folder (atomically)."""
        path = Path(folder) / CALIBRATION_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, folder: PathLike) -> Calibration | None:
        """The calibration stored in ``folder``, or ``None`` if it has none.

        Raises:
            AnlamError: the file exists but is not a valid calibration.
        """
        path = Path(folder) / CALIBRATION_FILE
        return cls.read(path) if path.is_file() else None

    @classmethod
    def read(cls, path: PathLike) -> Calibration:
        """The calibration in the file ``path`` (as ``save`` writes it).

        Raises:
            AnlamError: not a valid calibration.
        """
        try:
            data = json.loads(read_text_file(path))
            calibration = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (json.JSONDecodeError, TypeError) as exc:
            raise AnlamError(f"{path}: not a valid calibration file ({exc}); run `anlam calibrate` again") from None
        if not calibration.weight > 0 or not 0 < calibration.threshold < 1:
            raise AnlamError(f"{path}: weight must be > 0 and threshold in (0, 1); run `anlam calibrate` again")
        return calibration


def fit_calibration(cosines: Sequence[float] | np.ndarray, labels: Sequence[float], prompt: str = "query", source: str = "") -> Calibration:
    """Fit the logistic curve and the F1-best threshold on pair cosines; ``label >= 0.5`` is positive.

    Raises:
        AnlamError: only one class present, or cosine does not rise with the label.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    cos = np.asarray(cosines, dtype=np.float64)
    positive = np.asarray(labels, dtype=np.float64) >= 0.5
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        raise AnlamError(f"calibration needs both positive (label >= 0.5) and negative pairs; got {n_pos} of {len(positive)} positive")
    mean, std = float(cos.mean()), float(cos.std())
    if std < 1e-9:
        raise AnlamError("calibration pairs all have the same cosine similarity; the model cannot tell them apart")
    # Standardise first so the default L2 penalty does not flatten the narrow cosine range.
    lr = LogisticRegression().fit(((cos - mean) / std)[:, None], positive)
    weight = float(lr.coef_[0, 0]) / std
    bias = float(lr.intercept_[0]) - weight * mean
    if weight <= 0:
        raise AnlamError("on these pairs a higher cosine does not mean more likely a paraphrase; check the labels")
    precision, recall, cuts = precision_recall_curve(positive, cos)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    below = cos[cos < cuts[best]]
    # Cut halfway to the next lower cosine: the same F1 here, and more margin on new pairs.
    cut = float((cuts[best] + below.max()) / 2) if below.size else float(cuts[best])
    threshold = float(1.0 / (1.0 + math.exp(-(weight * cut + bias))))
    threshold = min(max(threshold, 1e-6), 1 - 1e-6)
    auc = float(roc_auc_score(positive, cos))
    if auc < 0.6:
        logger.warning("cosine barely separates the positive from the negative pairs (ROC AUC %.2f): "
                       "decisions will be unreliable; fine-tune the model on pairs like these", auc)
    return Calibration(weight=weight, bias=bias, threshold=threshold, prompt=prompt, pairs=len(cos),
                       positives=n_pos, f1=round(float(f1[best]), 4), auc=round(auc, 4), source=source)


def pair_cosines(embedder: EmbedderLike, pairs: Sequence[Pair], prompt: str = "query", batch_size: int = 32) -> np.ndarray:
    """Cosine similarity of each pair; every distinct text is embedded once.

    Two texts with the same ``search_key`` (they differ only in case, Turkish letters typed as
    ASCII, apostrophes or spacing) are the same sentence: their cosine is 1.
    """
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    if not texts:
        return np.zeros(0, dtype=np.float32)
    row = {t: i for i, t in enumerate(texts)}
    vectors = embedder.encode(texts, prompt_name=prompt, batch_size=batch_size, show_progress=len(texts) > 256)
    a = vectors[[row[p[0]] for p in pairs]]
    b = vectors[[row[p[1]] for p in pairs]]
    same = np.array([search_key(x) == search_key(y) for x, y in pairs])
    return np.where(same, 1.0, np.clip((a * b).sum(axis=1), -1.0, 1.0)).astype(np.float32)


def calibrate(embedder: EmbedderLike, pairs: Sequence[Pair], labels: Sequence[float], source: str = "",
              prompt: str = "query", save: bool = True) -> Calibration:
    """Calibrate ``embedder`` on labelled pairs and (with ``save``) store it in its model folder.

    Raises:
        AnlamError: see ``fit_calibration``; also no pairs, a folder that is not writable or holds
            an ``anlam_calibration.json`` anlam did not write (never replaced).
    """
    if not pairs:
        raise AnlamError(f"{source or 'calibration'}: no pairs")
    if save:
        _check_calibration_target(Path(embedder.path))
    calibration = fit_calibration(pair_cosines(embedder, pairs, prompt), labels, prompt=prompt, source=source)
    if save:
        try:
            calibration.save(embedder.path)
        except OSError as exc:
            raise AnlamError(f"{embedder.path}: cannot write {CALIBRATION_FILE} ({exc.strerror or exc})") from None
    return calibration


def _check_calibration_target(folder: Path) -> None:
    """``folder`` may receive ``anlam_calibration.json``: a local folder, and any file of that name is one anlam wrote."""
    if not folder.is_dir():
        raise AnlamError(f"{folder}: not a local model folder; cannot store {CALIBRATION_FILE} there")
    path = check_output_file(folder / CALIBRATION_FILE)
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("method") != "logistic-cosine":
            raise AnlamError(f"{folder}: its {CALIBRATION_FILE} is not a calibration anlam wrote; "
                             "move it away to calibrate this model")


def mltr_calibration_pairs(split: str = "dev", negatives: Sequence[str] | None = None) -> tuple[list[Pair], list[float]]:
    """ML-TR pairs of ``split``: grade "paraphrase" positive, the ``negatives`` grades negative.

    By default every other grade is negative (near-miss, same-concept, sibling, unrelated):
    a corpus holds far more same-topic pairs than near-misses, and an untuned base cannot tell
    paraphrases from near-misses at all (ROC AUC about 0.52 for e5-small), so calibrating on
    near-misses alone would put its threshold below every same-topic pair.
    """
    from anlam.data import mltr_pairs

    frame = mltr_pairs(split)
    if negatives is not None:
        frame = frame[frame["grade"].isin(["paraphrase", *negatives])]
    pairs = list(zip(frame["sentence_0"], frame["sentence_1"]))
    return pairs, [1.0 if g == "paraphrase" else 0.0 for g in frame["grade"]]


def default_calibration(embedder: EmbedderLike, cache_dir: PathLike | None = None) -> Calibration:
    """Calibrate on ML-TR dev, once: the result is cached (the built-in models' come with anlam).

    Args:
        cache_dir: keep the result there as ``<model_checksum>.json`` (and read it back next
            time), leaving the model folder untouched; without it the result goes into the model
            folder when it is writable. A model that is not a local folder is not cached.
    """
    folder = Path(embedder.path)
    known = stored_calibration(folder, cache_dir)
    if known is not None:
        return known
    checksum = model_checksum(folder) if folder.is_dir() else None
    cached = Path(cache_dir) / f"{checksum}.json" if cache_dir is not None and checksum else None
    pairs, labels = mltr_calibration_pairs("dev")
    logger.warning("%s has no %s yet: calibrating on ML-TR dev (%d pairs, once)", embedder.path, CALIBRATION_FILE, len(pairs))
    calibration = calibrate(embedder, pairs, labels, source="ML-TR dev", save=False)
    target = cached if cache_dir is not None else folder / CALIBRATION_FILE if folder.is_dir() else None
    if target is not None:
        try:
            write_json(target, calibration.to_dict())
        except (OSError, AnlamError) as exc:
            logger.warning("could not cache the calibration as %s (%s)", target, getattr(exc, "strerror", None) or exc)
    return calibration


def stored_calibration(folder: PathLike, cache_dir: PathLike | None = None) -> Calibration | None:
    """A calibration already fitted for the model in ``folder``, without fitting one.

    Looks in the folder's ``anlam_calibration.json``, then ``cache_dir`` and the built-in models'
    calibrations by the folder's checksum; ``None`` when there is none (or ``folder`` is not local).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    checksum = model_checksum(folder)
    places = [folder / CALIBRATION_FILE, *([Path(cache_dir) / f"{checksum}.json"] if cache_dir is not None else []),
              SHIPPED_CALIBRATIONS / f"{checksum}.json"]
    for place in places:
        if place.is_file():
            try:
                return Calibration.read(place)
            except AnlamError as exc:
                logger.warning("%s; looking further", exc)
    return None


@dataclass(frozen=True)
class ParaphraseResult:
    probability: float
    paraphrase: bool
    cosine: float

    def to_dict(self) -> dict:
        return {"probability": round(self.probability, 4), "paraphrase": self.paraphrase}


class ParaphraseDetector:
    """Calibrated paraphrase decisions for sentence pairs.

    Attributes:
        embedder: the model.
        calibration: the cosine -> probability mapping and threshold.
    """

    def __init__(self, embedder: EmbedderLike, calibration: Calibration) -> None:
        self.embedder = embedder
        self.calibration = calibration

    @classmethod
    def from_model(cls, model: EmbedderLike | PathLike | None = None, calibration: Calibration | None = None,
                   device: str | None = None) -> ParaphraseDetector:
        """A detector for a model folder (or loaded ``Embedder``) with its stored calibration.

        Without ``calibration`` and without ``anlam_calibration.json`` in the folder, the
        model is calibrated on ML-TR dev first.

        Raises:
            AnlamError: the model cannot be loaded, or no calibration can be had.
        """
        embedder = (Embedder.from_pretrained(model, device=device) if model is None or isinstance(model, (str, Path))
                    else model)
        calibration = calibration or Calibration.load(embedder.path) or default_calibration(embedder)
        return cls(embedder, calibration)

    def cosines(self, pairs: Sequence[Pair]) -> np.ndarray:
        return pair_cosines(self.embedder, pairs, self.calibration.prompt)

    def predict(self, pairs: Sequence[Pair]) -> list[ParaphraseResult]:
        """One result per pair, in order."""
        cosines = self.cosines(pairs)
        probabilities = self.calibration.probability(cosines)
        return [ParaphraseResult(float(p), bool(p >= self.calibration.threshold), float(c))
                for p, c in zip(probabilities, cosines)]


@dataclass(frozen=True)
class DuplicateGroup:
    """Texts that all near-duplicate each other; ``indices[0]`` is the first occurrence.

    ``probabilities[i]`` is the paraphrase probability of ``indices[i + 1]`` with ``indices[0]``.
    """

    indices: list[int]
    probabilities: list[float]


def find_duplicates(texts: Sequence[str], detector: ParaphraseDetector, neighbours: int = 10,
                    threshold: float | None = None, batch_size: int = 32) -> list[DuplicateGroup]:
    """Near-duplicate groups in ``texts``, in order of first occurrence.

    Candidate pairs are each text's ``neighbours`` nearest texts (FAISS, inner product on unit
    vectors) whose paraphrase probability reaches ``threshold`` (default: the calibrated one).
    Going from the most similar pair down, two groups merge only if every text of one is a
    near-duplicate of every text of the other (complete linkage), so A~B and B~C never pull
    an unrelated C into A's group. Texts that differ only in case, Turkish letters typed as
    ASCII, apostrophes or spacing (same ``search_key``) count as identical.

    Raises:
        AnlamError: no texts, an empty text, or a threshold outside (0, 1).
    """
    import faiss

    if not texts:
        raise AnlamError("no texts to de-duplicate (empty corpus)")
    calibration = detector.calibration
    cut = calibration.cosine_at(threshold) if threshold is not None else calibration.cosine_threshold
    vectors = detector.embedder.encode(list(texts), prompt_name=calibration.prompt, batch_size=batch_size,
                                       show_progress=len(texts) > 256)
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        vectors[i] = vectors[first.setdefault(search_key(text), i)]
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims, ids = index.search(vectors, min(neighbours + 1, len(texts)))
    edges = {(min(i, int(j)), max(i, int(j))): float(s)
             for i, (row_sims, row_ids) in enumerate(zip(sims, ids))
             for s, j in zip(row_sims, row_ids) if j >= 0 and j != i and s >= cut}
    owner = list(range(len(texts)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(texts))}
    for (i, j), _ in sorted(edges.items(), key=lambda item: -item[1]):
        a, b = owner[i], owner[j]
        if a != b and float((vectors[members[a]] @ vectors[members[b]].T).min()) >= cut:
            for x in members[b]:
                owner[x] = a
            members[a] += members.pop(b)
    groups = []
    for indices in sorted(sorted(m) for m in members.values() if len(m) > 1):
        probabilities = calibration.probability(vectors[indices[1:]] @ vectors[indices[0]])
        groups.append(DuplicateGroup(indices, [round(float(p), 4) for p in probabilities]))
    return groups


def read_pairs(path: PathLike, columns: Sequence[str] | None = None, labelled: bool = False):
    """Sentence pairs as a DataFrame ``sentence_0, sentence_1[, label]``.

    Args:
        columns: the two text columns (and, with ``labelled``, the label column) of the file;
            default ``sentence_0, sentence_1, label``.
        labelled: read a label in [0, 1] too (validated by ``anlam.data.load_pairs``).

    Raises:
        AnlamError: unreadable file, missing column, empty text or bad label (file and row named).
    """
    import pandas as pd

    from anlam.data import load_pairs

    wanted = list(columns or PAIR_COLUMNS[: 3 if labelled else 2])
    if len(wanted) != (3 if labelled else 2):
        need = "three names: text,text,label" if labelled else "two names: text,text"
        raise AnlamError(f"--columns needs {need}; got {','.join(wanted)}")
    if not labelled:
        first, second = read_columns(path, wanted, "; name them with --columns")
        return pd.DataFrame({"sentence_0": first, "sentence_1": second})
    return load_pairs(path, dict(zip(wanted, PAIR_COLUMNS)) if columns else None)
