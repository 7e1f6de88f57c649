"""The cached evaluation core: every task the model is used for, as one flat dict of metrics.

Tasks compose sentence-transformers evaluators (EmbeddingSimilarityEvaluator,
BinaryClassificationEvaluator, InformationRetrievalEvaluator); only clustering (k-means
V-measure) and the robustness rows are computed here. Each evaluator returns a flat dict of
prefixed metrics; the suite merges them into one dict per model. A per-model embedding cache
under the evaluators means every distinct sentence is embedded once across all tasks.

Every metric key is ``{task}-{split}_{metric}``: the evaluator's name (``task_name``) is the task
and the split it ran on, the split always its last part, then sentence-transformers' metric name
(``ml-tr-retrieval-dev_cosine_mrr@10``, ``stsb-tr-test_spearman_cosine``). Task names use "-" only
and metric names start after the first "_", so ``key.split("_", 1)[0].rsplit("-", 1)`` is
``[task, split]`` for every key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anlam.data import load_pairs, mltr_clustering, mltr_pairs, mltr_retrieval, read_table
from anlam.data.public import stsb_tr, tqp  # not via anlam.data: mypy reads its "tqp" as the data folder
from anlam.errors import AnlamError
from anlam.models import Embedder
from anlam.text import ascii_fold, nfc, tr_upper

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PathLike = Path | str
Qrels = dict[str, set[str]]

TASKS = ("sts", "pairs", "retrieval", "robustness", "clustering", "d2l", "general", "user")
EVAL_SPLITS = ("dev", "test")
# three metrics, one per yardstick (bank, real text, general Turkish): what ``spot_check`` measures
SPOT_CHECK = (("ml-tr-retrieval", "cosine_mrr@10"), ("d2l-heading", "cosine_mrr@10"), ("stsb-tr", "spearman_cosine"))


def task_name(task: str, split: str) -> str:
    """The evaluator name of ``task`` on ``split``, which prefixes its metric keys: ``ml-tr-retrieval-dev``."""
    return f"{task}-{split}"


def metric_key(task: str, metric: str, split: str) -> str:
    """``("ml-tr-retrieval", "cosine_mrr@10", "dev")`` -> ``"ml-tr-retrieval-dev_cosine_mrr@10"``."""
    return f"{task_name(task, split)}_{metric}"


class CachedEncoder:
    """Wraps a SentenceTransformer's ``encode`` so each (prompt, text) is embedded once.

    Evaluators call ``model.encode`` / ``encode_query`` / ``encode_document``; all of them
    end in ``encode``, which is replaced on the instance while the context is open. Calls
    with no prompt get ``symmetric_prompt`` (e5 wants "query: " on both sides of an STS pair).
    """

    def __init__(self, model: SentenceTransformer, symmetric_prompt: str | None = "query",
                 batch_size: int = 64) -> None:
        self.model = model
        self.symmetric: str = (model.prompts or {}).get(symmetric_prompt or "") or ""
        self.batch_size = batch_size
        self.cache: dict[tuple[str, str], np.ndarray] = {}
        self._original: Callable[..., Any] = model.encode

    def __enter__(self) -> CachedEncoder:
        setattr(self.model, "encode", self.encode)  # noqa: B010 (an instance attribute shadows the method)
        return self

    def __exit__(self, *exc: object) -> None:
        del self.model.encode  # the class method shows through again

    def vectors(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Unit vectors for ``texts`` under ``prompt`` (a prefix string), from cache when possible."""
        texts = [nfc(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if (prompt, t) not in self.cache))
        if missing:
            out = self._original(missing, prompt=prompt, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=len(missing) > 500)
            for text, vec in zip(missing, np.asarray(out, dtype=np.float32)):
                self.cache[(prompt, text)] = vec
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension() or 0), dtype=np.float32)
        return np.stack([self.cache[(prompt, t)] for t in texts])

    def encode(self, inputs: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None,
               convert_to_tensor: bool = False, normalize_embeddings: bool = False, truncate_dim: int | None = None,
               **_: object) -> Any:
        """``SentenceTransformer.encode`` as the evaluators call it, answered from the cache."""
        if prompt is None:
            prompt = ((self.model.prompts or {}).get(prompt_name) or "") if prompt_name else self.symmetric
        single = isinstance(inputs, str)
        vectors = self.vectors([inputs] if isinstance(inputs, str) else list(inputs), prompt)
        if truncate_dim:
            vectors = vectors[:, :truncate_dim]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        result = vectors[0] if single else vectors
        if convert_to_tensor:
            import torch

            return torch.from_numpy(np.ascontiguousarray(result))
        return result


@dataclass
class UserData:
    """The user's own evaluation files (same loaders as training)."""

    pairs: PathLike | None = None
    columns: str | None = None
    scale: float | None = None
    queries: PathLike | None = None
    corpus: PathLike | None = None
    qrels: PathLike | None = None


@dataclass
class ModelResult:
    """Metrics of one model plus the per-pair scores the plots need."""

    name: str
    metrics: dict[str, float]
    sts_scores: np.ndarray = field(repr=False)
    sts_gold: np.ndarray = field(repr=False)
    pair_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    split: str = "test"


def _sts(model: SentenceTransformer, pairs: pd.DataFrame, name: str) -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    evaluator = EmbeddingSimilarityEvaluator(pairs["sentence_0"].tolist(), pairs["sentence_1"].tolist(),
                                             pairs["label"].astype(float).tolist(), main_similarity="cosine",
                                             similarity_fn_names=["cosine"], name=name, write_csv=False)
    return evaluator(model)


def _pairclass(model: SentenceTransformer, pairs: pd.DataFrame, name: str) -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator

    evaluator = BinaryClassificationEvaluator(pairs["sentence_0"].tolist(), pairs["sentence_1"].tolist(),
                                              (pairs["label"] >= 0.5).astype(int).tolist(), name=name,
                                              similarity_fn_names=["cosine"], write_csv=False)
    return evaluator(model)


def _ir(model: SentenceTransformer, queries: dict[str, str], corpus: dict[str, str], qrels: Qrels, name: str,
        corpus_prompt: str = "passage") -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    prompts = model.prompts or {}
    inputs: tuple[dict[str, Any], dict[str, Any]] = (dict(queries), dict(corpus))
    evaluator = InformationRetrievalEvaluator(
        *inputs, qrels, name=name, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 5, 10],
        precision_recall_at_k=[1, 5, 10], map_at_k=[100], write_csv=False, score_functions={"cosine": cos_sim},
        query_prompt_name="query" if "query" in prompts else None,
        corpus_prompt_name=corpus_prompt if corpus_prompt in prompts else None,
    )
    return evaluator(model)


def tqp_retrieval(split: str) -> tuple[dict[str, str], dict[str, str], Qrels]:
    """TQP dev as retrieval: each paraphrase set split in two, one half asks, the other is found.

    TQP pairs every sentence of a paraphrase set with every other, so the pairs' two sides share
    most sentences; a query must never meet itself in the corpus, hence the split within each set
    (connected components of the pairs, members in file order: even positions corpus, odd queries).
    TQP ships no test split, so its dev file is halved by set: even sets are anlam's dev, odd
    sets its test.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    frame = tqp("dev")
    texts = list(dict.fromkeys([*frame["sentence_0"], *frame["sentence_1"]]))
    index = {text: i for i, text in enumerate(texts)}
    edges = coo_matrix((np.ones(len(frame)), (frame["sentence_0"].map(index), frame["sentence_1"].map(index))),
                       shape=(len(texts), len(texts)))
    _, labels = connected_components(edges, directed=False)
    members: dict[int, list[str]] = {}
    for text, label in zip(texts, labels):
        members.setdefault(int(label), []).append(text)
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: Qrels = {}
    half = 1 if split == "test" else 0
    for number, group in enumerate(members.values()):
        if number % 2 != half:
            continue
        docs = {f"d{len(corpus) + i}": text for i, text in enumerate(group[::2])}
        corpus |= docs
        for text in group[1::2]:
            qrels[f"q{len(queries)}"] = set(docs)
            queries[f"q{len(queries)}"] = text
    return queries, corpus, qrels


def _read_id_text(path: PathLike, what: str) -> dict[str, str]:
    frame = read_table(path)
    for column in ("id", "text"):
        if column not in frame.columns:
            raise AnlamError(f"{path}: {what} file needs columns id, text (missing {column})")
    return {str(i): str(t) for i, t in zip(frame["id"], frame["text"])}


def _read_qrels(path: PathLike, queries: dict[str, str], corpus: dict[str, str]) -> Qrels:
    frame = read_table(path)
    for column in ("query_id", "doc_id"):
        if column not in frame.columns:
            raise AnlamError(f"{path}: qrels file needs columns query_id, doc_id (missing {column})")
    qrels: Qrels = {}
    for row, (q, d) in enumerate(zip(frame["query_id"].astype(str), frame["doc_id"].astype(str)), start=1):
        if q not in queries:
            raise AnlamError(f"{path}: row {row}: query_id {q!r} is not in the queries file")
        if d not in corpus:
            raise AnlamError(f"{path}: row {row}: doc_id {d!r} is not in the corpus file")
        qrels.setdefault(q, set()).add(d)
    return qrels


def _v_measure(vectors: np.ndarray, labels: Sequence[str]) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    predicted = KMeans(n_clusters=k, n_init=10, random_state=42).fit_predict(vectors)
    return float(v_measure_score(labels, predicted))


def _with_variants(model: SentenceTransformer, queries: dict[str, str], corpus: dict[str, str], qrels: Qrels,
                   task: str, split: str, corpus_prompt: str = "passage") -> dict[str, float]:
    """The task as given, then with its queries typed without Turkish letters and in capitals."""
    metrics = _ir(model, queries, corpus, qrels, task_name(task, split), corpus_prompt)
    for variant, transform in (("ascii", ascii_fold), ("upper", tr_upper)):
        changed = {q: transform(text) for q, text in queries.items()}
        metrics |= _ir(model, changed, corpus, qrels, task_name(f"{task}-{variant}", split), corpus_prompt)
    return metrics


def _d2l(model: SentenceTransformer, cache: CachedEncoder, query_prefix: str, split: str) -> dict[str, float]:
    """Real Turkish ML prose (anlam.data.d2l): headings, first sentences, translations, glossary, clusters."""
    from anlam.data.d2l import (d2l_blocks, d2l_glossary, first_sentence_retrieval, glossary_retrieval,
                                heading_retrieval, paragraph_clusters, translation_retrieval)

    blocks = d2l_blocks(split)
    glossary = d2l_glossary(split)
    metrics = _with_variants(model, *heading_retrieval(blocks), "d2l-heading", split)
    metrics |= _ir(model, *first_sentence_retrieval(blocks), task_name("d2l-first-sentence", split))
    # translations are symmetric: both sides get the query prompt, as STS pairs do
    symmetric = {"d2l-en2tr": translation_retrieval(blocks, "en"), "d2l-tr2en": translation_retrieval(blocks, "tr"),
                 "d2l-glossary-en2tr": glossary_retrieval(glossary, "en"),
                 "d2l-glossary-tr2en": glossary_retrieval(glossary, "tr")}
    for task, (queries, corpus, qrels) in symmetric.items():
        metrics |= _ir(model, queries, corpus, qrels, task_name(task, split), corpus_prompt="query")
    for by in ("chapter", "section"):
        paragraphs, labels = paragraph_clusters(blocks, by)
        key = metric_key(f"d2l-clustering-{by}", "v_measure", split)
        metrics[key] = _v_measure(cache.vectors(paragraphs, query_prefix), labels)
    return metrics


def _bank_retrieval(model: SentenceTransformer, split: str, robustness: bool) -> dict[str, float]:
    """Bank questions -> their concept's definition; also per question kind and as users type them."""
    queries, corpus, qrels = mltr_retrieval(split)
    if robustness:
        metrics = _with_variants(model, queries, corpus, qrels, "ml-tr-retrieval", split)
    else:
        metrics = _ir(model, queries, corpus, qrels, task_name("ml-tr-retrieval", split))
    for kind in ("named", "unnamed"):
        subset = {q: text for q, text in queries.items() if (":u" in q) == (kind == "unnamed")}
        if subset:
            subset_qrels = {q: qrels[q] for q in subset}
            metrics |= _ir(model, subset, corpus, subset_qrels, task_name(f"ml-tr-retrieval-{kind}", split))
    return metrics


def check_request(tasks: Sequence[str] | None, split: str) -> None:
    """Unknown task names and splits are errors, never an empty or mislabelled report.

    Raises:
        AnlamError: a task not in ``TASKS`` or a split not in ``EVAL_SPLITS``.
    """
    unknown = sorted(set(tasks or ()) - set(TASKS))
    if unknown:
        raise AnlamError(f"unknown task {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    if split not in EVAL_SPLITS:
        raise AnlamError(f"unknown split {split!r} (choose dev or test; train is what models learn from)")


def evaluate_embedder(embedder: Embedder, name: str, *, user: UserData | None = None,
                      tasks: Sequence[str] | None = None, split: str = "test") -> ModelResult:
    """Run every task of ``TASKS`` (or the named subset) on ``split`` (dev to choose recipes, test to report).

    Every metric key names the split the same way (see the module docstring): ``ml-tr-sts-dev_spearman_cosine``,
    ``d2l-heading-test_cosine_mrr@10``; your own files are scored under the split you asked for
    (``user-pairs-dev_spearman_cosine``), the use you put them to.

    Raises:
        AnlamError: an unknown task name, or a user evaluation file that is missing or malformed.
    """
    check_request(tasks, split)
    chosen = set(tasks or TASKS)
    model = embedder.model
    metrics: dict[str, float] = {}
    ml_pairs = mltr_pairs(split)
    pair_scores: dict[str, np.ndarray] = {}
    with CachedEncoder(model) as cache:
        query_prefix = embedder.prompt_text("query")

        def cosines(frame: pd.DataFrame) -> np.ndarray:
            a = cache.vectors(frame["sentence_0"].tolist(), query_prefix)
            b = cache.vectors(frame["sentence_1"].tolist(), query_prefix)
            return (a * b).sum(axis=1)

        if "sts" in chosen:
            metrics |= _sts(model, ml_pairs, task_name("ml-tr-sts", split))
        if "pairs" in chosen:
            binary = ml_pairs[ml_pairs["grade"].isin(["paraphrase", "near-miss"])]
            metrics |= _pairclass(model, binary, task_name("ml-tr-pairs", split))
            for grade in ("paraphrase", "near-miss"):
                pair_scores[grade] = cosines(binary[binary["grade"] == grade])
        if "retrieval" in chosen or "robustness" in chosen:
            metrics |= _bank_retrieval(model, split, "robustness" in chosen)
        if "clustering" in chosen:
            sentences, labels = mltr_clustering(split)
            key = metric_key("ml-tr-clustering", "v_measure", split)
            metrics[key] = _v_measure(cache.vectors(sentences, query_prefix), labels)
        if "d2l" in chosen:
            metrics |= _d2l(model, cache, query_prefix, split)
        if "general" in chosen:
            metrics |= _sts(model, stsb_tr(split), task_name("stsb-tr", split))
            # question paraphrases are symmetric: both sides get the query prompt
            metrics |= _ir(model, *tqp_retrieval(split), task_name("tqp", split), corpus_prompt="query")
        if user and user.pairs and "user" in chosen:
            pairs = load_pairs(user.pairs, user.columns, user.scale)
            metrics |= _sts(model, pairs, task_name("user-pairs", split))
            if (pairs["label"] >= 0.5).any() and (pairs["label"] < 0.5).any():
                metrics |= _pairclass(model, pairs, task_name("user-pairs", split))
        if user and user.queries and "user" in chosen:
            if not (user.corpus and user.qrels):
                raise AnlamError("--queries needs --corpus and --qrels too")
            queries = _read_id_text(user.queries, "queries")
            corpus = _read_id_text(user.corpus, "corpus")
            qrels = _read_qrels(user.qrels, queries, corpus)
            metrics |= _ir(model, queries, corpus, qrels, task_name("user-retrieval", split))
        sts_scores = cosines(ml_pairs) if "sts" in chosen else np.zeros(0)
    clean = {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float, np.floating))}
    gold = ml_pairs["label"].to_numpy(dtype=float) if "sts" in chosen else np.zeros(0)
    return ModelResult(name, clean, sts_scores, gold, pair_scores, split)


def spot_check(embedder: Embedder, split: str = "dev") -> dict[str, float]:
    """Three of the suite's metrics, one per yardstick, in a minute rather than the suite's many.

    Bank question -> definition MRR@10, d2l-tr heading -> section MRR@10 and STSb-TR Spearman,
    computed as ``evaluate_embedder`` computes them (same prompts, same cache), under the same keys
    (``SPOT_CHECK``); about 4,000 texts on dev. For checks that compare two forms of one model
    (the int8 export against its float weights) where the full suite would take too long.

    Raises:
        AnlamError: a split not in ``EVAL_SPLITS``.
    """
    from anlam.data.d2l import d2l_blocks, heading_retrieval

    check_request(None, split)
    model = embedder.model
    with CachedEncoder(model):
        metrics = _ir(model, *mltr_retrieval(split), task_name("ml-tr-retrieval", split))
        metrics |= _ir(model, *heading_retrieval(d2l_blocks(split)), task_name("d2l-heading", split))
        metrics |= _sts(model, stsb_tr(split), task_name("stsb-tr", split))
    keys = [metric_key(task, metric, split) for task, metric in SPOT_CHECK]
    return {key: round(float(metrics[key]), 6) for key in keys}
