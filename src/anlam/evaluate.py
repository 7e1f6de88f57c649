"""The evaluation suite: every task the model is used for, base and tuned side by side.

Tasks compose sentence-transformers evaluators (EmbeddingSimilarityEvaluator,
BinaryClassificationEvaluator, InformationRetrievalEvaluator); only clustering (k-means
V-measure) and the robustness rows are computed here. Each evaluator returns a flat dict of
prefixed metrics; the suite merges them into one dict per model. A per-model embedding cache
under the evaluators means every distinct sentence is embedded once across all tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anlam.data import load_pairs, mltr_clustering, mltr_pairs, mltr_retrieval, read_table, stsb_tr, tqp
from anlam.errors import AnlamError
from anlam.io import atomic_path
from anlam.models import Embedder
from anlam.text import ascii_fold, nfc, tr_upper

logger = logging.getLogger(__name__)

PathLike = Path | str

# (metric key, display name, higher is better) — the rows of the report, in order
HEADLINE: list[tuple[str, str]] = [
    ("ml-tr-test_spearman_cosine", "ML-TR test STS Spearman"),
    ("ml-tr-test_pearson_cosine", "ML-TR test STS Pearson"),
    ("stsb-tr-test_spearman_cosine", "STSb-TR test Spearman"),
    ("stsb-tr-test_pearson_cosine", "STSb-TR test Pearson"),
    ("ml-tr-pairs_cosine_ap", "Paraphrase vs near-miss AP"),
    ("ml-tr-pairs_cosine_f1", "Paraphrase vs near-miss best F1"),
    ("ml-tr-pairs_cosine_f1_threshold", "  threshold of best F1"),
    ("ml-tr-pairs_cosine_accuracy", "Paraphrase vs near-miss accuracy"),
    ("ml-tr-retrieval_cosine_mrr@10", "ML-TR retrieval MRR@10"),
    ("ml-tr-retrieval_cosine_ndcg@10", "ML-TR retrieval nDCG@10"),
    ("ml-tr-retrieval_cosine_recall@1", "ML-TR retrieval Recall@1"),
    ("ml-tr-retrieval_cosine_recall@5", "ML-TR retrieval Recall@5"),
    ("ml-tr-retrieval_cosine_recall@10", "ML-TR retrieval Recall@10"),
    ("tqp-dev_cosine_mrr@10", "TQP dev retrieval MRR@10"),
    ("tqp-dev_cosine_recall@1", "TQP dev retrieval Recall@1"),
    ("ml-tr-clustering_v_measure", "ML-TR clustering V-measure"),
    ("ml-tr-retrieval-ascii_cosine_mrr@10", "Retrieval MRR@10, queries without Turkish letters"),
    ("ml-tr-retrieval-upper_cosine_mrr@10", "Retrieval MRR@10, queries in capitals"),
    ("robustness_ascii_mrr@10_drop", "  drop without Turkish letters (lower is better)"),
    ("robustness_upper_mrr@10_drop", "  drop in capitals (lower is better)"),
]
LOWER_IS_BETTER = {"robustness_ascii_mrr@10_drop", "robustness_upper_mrr@10_drop"}
NOT_RANKED = {"ml-tr-pairs_cosine_f1_threshold"}
BAR_METRICS = ["ml-tr-test_spearman_cosine", "stsb-tr-test_spearman_cosine", "ml-tr-pairs_cosine_ap",
               "ml-tr-retrieval_cosine_mrr@10", "tqp-dev_cosine_mrr@10", "ml-tr-clustering_v_measure"]


class CachedEncoder:
    """Wraps a SentenceTransformer's ``encode`` so each (prompt, text) is embedded once.

    Evaluators call ``model.encode`` / ``encode_query`` / ``encode_document``; all of them
    end in ``encode``, which is replaced on the instance while the context is open. Calls
    with no prompt get ``symmetric_prompt`` (e5 wants "query: " on both sides of an STS pair).
    """

    def __init__(self, model, symmetric_prompt: str | None = "query", batch_size: int = 64) -> None:
        self.model = model
        self.symmetric = (model.prompts or {}).get(symmetric_prompt or "", "")
        self.batch_size = batch_size
        self.cache: dict[tuple[str, str], np.ndarray] = {}
        self._original: Callable | None = None

    def __enter__(self) -> CachedEncoder:
        self._original = self.model.encode
        self.model.encode = self.encode
        return self

    def __exit__(self, *exc) -> None:
        del self.model.encode  # the class method shows through again

    def vectors(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """Unit vectors for ``texts`` under ``prompt`` (a prefix string), from cache when possible."""
        texts = [nfc(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if (prompt, t) not in self.cache))
        if missing:
            out = self._original(missing, prompt=prompt or None, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=len(missing) > 500)
            for text, vec in zip(missing, np.asarray(out, dtype=np.float32)):
                self.cache[(prompt, text)] = vec
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        return np.stack([self.cache[(prompt, t)] for t in texts])

    def encode(self, inputs, prompt_name: str | None = None, prompt: str | None = None, convert_to_tensor: bool = False,
               normalize_embeddings: bool = False, truncate_dim: int | None = None, **_: object):
        if prompt is None:
            prompt = (self.model.prompts or {}).get(prompt_name, "") if prompt_name else self.symmetric
        single = isinstance(inputs, str)
        vectors = self.vectors([inputs] if single else list(inputs), prompt)
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


def _sts(pairs: pd.DataFrame, name: str) -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    return EmbeddingSimilarityEvaluator(pairs["sentence_0"].tolist(), pairs["sentence_1"].tolist(),
                                        pairs["label"].astype(float).tolist(), main_similarity="cosine",
                                        similarity_fn_names=["cosine"], name=name, write_csv=False)


def _pairclass(pairs: pd.DataFrame, name: str):
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator

    return BinaryClassificationEvaluator(pairs["sentence_0"].tolist(), pairs["sentence_1"].tolist(),
                                         (pairs["label"] >= 0.5).astype(int).tolist(), name=name,
                                         similarity_fn_names=["cosine"], write_csv=False)


def _ir(model, queries, corpus, qrels, name: str, corpus_prompt: str = "passage") -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    prompts = model.prompts or {}
    evaluator = InformationRetrievalEvaluator(
        queries, corpus, qrels, name=name, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 5, 10],
        precision_recall_at_k=[1, 5, 10], map_at_k=[100], write_csv=False, score_functions={"cosine": cos_sim},
        query_prompt_name="query" if "query" in prompts else None,
        corpus_prompt_name=corpus_prompt if corpus_prompt in prompts else None,
    )
    return evaluator(model)


def _tqp_retrieval() -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """TQP dev as retrieval: each paraphrase set split in two, one half asks, the other is found.

    TQP pairs every sentence of a paraphrase set with every other, so the pairs' two sides share
    most sentences; a query must never meet itself in the corpus, hence the split within each set
    (connected components of the pairs, members in file order: even positions corpus, odd queries).
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
    qrels: dict[str, set[str]] = {}
    for group in members.values():
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


def _read_qrels(path: PathLike, queries: dict[str, str], corpus: dict[str, str]) -> dict[str, set[str]]:
    frame = read_table(path)
    for column in ("query_id", "doc_id"):
        if column not in frame.columns:
            raise AnlamError(f"{path}: qrels file needs columns query_id, doc_id (missing {column})")
    qrels: dict[str, set[str]] = {}
    for row, (q, d) in enumerate(zip(frame["query_id"].astype(str), frame["doc_id"].astype(str)), start=1):
        if q not in queries:
            raise AnlamError(f"{path}: row {row}: query_id {q!r} is not in the queries file")
        if d not in corpus:
            raise AnlamError(f"{path}: row {row}: doc_id {d!r} is not in the corpus file")
        qrels.setdefault(q, set()).add(d)
    return qrels


def _v_measure(vectors: np.ndarray, labels: list[str]) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    predicted = KMeans(n_clusters=k, n_init=10, random_state=42).fit_predict(vectors)
    return float(v_measure_score(labels, predicted))


def evaluate_embedder(embedder: Embedder, name: str, user: UserData | None = None, tasks: Sequence[str] | None = None,
                      split: str = "test") -> ModelResult:
    """Run every task (or the named subset: sts, pairs, retrieval, tqp, clustering, robustness, user).

    ``split="dev"`` evaluates on the ML-TR and STSb-TR dev splits (for choosing recipes); the
    STS metrics are then named ``ml-tr-dev_*`` and ``stsb-tr-dev_*``.

    Raises:
        AnlamError: a user evaluation file is missing or malformed.
    """
    tasks = set(tasks or ("sts", "pairs", "retrieval", "tqp", "clustering", "robustness", "user"))
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

        if "sts" in tasks:
            metrics |= _sts(ml_pairs, f"ml-tr-{split}")(model)
            metrics |= _sts(stsb_tr(split), f"stsb-tr-{split}")(model)
        if "pairs" in tasks:
            binary = ml_pairs[ml_pairs["grade"].isin(["paraphrase", "near-miss"])]
            metrics |= _pairclass(binary, "ml-tr-pairs")(model)
            for grade in ("paraphrase", "near-miss"):
                pair_scores[grade] = cosines(binary[binary["grade"] == grade])
        if "retrieval" in tasks or "robustness" in tasks:
            queries, corpus, qrels = mltr_retrieval(split)
            metrics |= _ir(model, queries, corpus, qrels, "ml-tr-retrieval")
            if "robustness" in tasks:
                for variant, transform in (("ascii", ascii_fold), ("upper", tr_upper)):
                    changed = {q: transform(text) for q, text in queries.items()}
                    metrics |= _ir(model, changed, corpus, qrels, f"ml-tr-retrieval-{variant}")
                    drop = metrics["ml-tr-retrieval_cosine_mrr@10"] - metrics[f"ml-tr-retrieval-{variant}_cosine_mrr@10"]
                    metrics[f"robustness_{variant}_mrr@10_drop"] = drop
        if "tqp" in tasks:
            # question paraphrases are symmetric: both sides get the query prompt
            metrics |= _ir(model, *_tqp_retrieval(), "tqp-dev", corpus_prompt="query")
        if "clustering" in tasks:
            sentences, labels = mltr_clustering(split)
            metrics["ml-tr-clustering_v_measure"] = _v_measure(cache.vectors(sentences, query_prefix), labels)
        if user and user.pairs and "user" in tasks:
            pairs = load_pairs(user.pairs, user.columns, user.scale)
            metrics |= _sts(pairs, "user-pairs")(model)
            if (pairs["label"] >= 0.5).any() and (pairs["label"] < 0.5).any():
                metrics |= _pairclass(pairs, "user-pairs")(model)
        if user and user.queries and "user" in tasks:
            if not (user.corpus and user.qrels):
                raise AnlamError("--queries needs --corpus and --qrels too")
            queries = _read_id_text(user.queries, "queries")
            corpus = _read_id_text(user.corpus, "corpus")
            metrics |= _ir(model, queries, corpus, _read_qrels(user.qrels, queries, corpus), "user-retrieval")
        sts_scores = cosines(ml_pairs) if "sts" in tasks else np.zeros(0)
    clean = {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float, np.floating))}
    gold = ml_pairs["label"].to_numpy(dtype=float) if "sts" in tasks else np.zeros(0)
    return ModelResult(name, clean, sts_scores, gold, pair_scores)


def _label(path: str, index: int) -> str:
    return f"{index + 1}: {Path(path).name}"


def _bold_best(row: list[float | None], key: str) -> list[str]:
    present = [v for v in row if v is not None]
    best = (min if key in LOWER_IS_BETTER else max)(present) if present and key not in NOT_RANKED else None
    out = []
    for i, v in enumerate(row):
        if v is None:
            out.append("–")
            continue
        text = f"{v:.4f}"
        if i > 0 and row[0] is not None:
            text += f" ({v - row[0]:+.4f})"
        out.append(f"**{text}**" if best is not None and len(present) > 1 and v == best else text)
    return out


def render_markdown(results: list[ModelResult]) -> str:
    """Metrics as rows, models as columns, best in bold, delta against the first model."""
    header = "| metric | " + " | ".join(r.name for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    user_keys = {k for r in results for k in r.metrics if k.startswith("user-")}
    keys = [k for k, _ in HEADLINE] + sorted(user_keys)
    names = dict(HEADLINE)
    for key in keys:
        row = [r.metrics.get(key) for r in results]
        if all(v is None for v in row):
            continue
        lines.append(f"| {names.get(key, key)} | " + " | ".join(_bold_best(row, key)) + " |")
    return "\n".join(lines) + "\n"


def _plots(results: list[ModelResult], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    with_sts = [r for r in results if len(r.sts_scores)]
    if with_sts:
        fig, axes = plt.subplots(1, len(with_sts), figsize=(4.2 * len(with_sts), 4), squeeze=False)
        for ax, r in zip(axes[0], with_sts):
            ax.scatter(r.sts_gold, r.sts_scores, s=4, alpha=0.3)
            ax.set_title(f"{r.name}\nSpearman {r.metrics.get('ml-tr-test_spearman_cosine', float('nan')):.3f}", fontsize=9)
            ax.set_xlabel("gold label")
            ax.set_ylabel("cosine")
        fig.tight_layout()
        fig.savefig(out / "sts-scatter.png", dpi=100)
        plt.close(fig)
        written.append("sts-scatter.png")
    with_pairs = [r for r in results if r.pair_scores]
    if with_pairs:
        fig, axes = plt.subplots(1, len(with_pairs), figsize=(4.2 * len(with_pairs), 3.6), squeeze=False)
        for ax, r in zip(axes[0], with_pairs):
            for grade, scores in r.pair_scores.items():
                ax.hist(scores, bins=40, alpha=0.6, label=grade)
            ax.set_title(r.name, fontsize=9)
            ax.set_xlabel("cosine")
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "pair-histograms.png", dpi=100)
        plt.close(fig)
        written.append("pair-histograms.png")
    metrics = [m for m in BAR_METRICS if any(m in r.metrics for r in results)]
    if metrics:
        fig, ax = plt.subplots(figsize=(9, 3.8))
        width = 0.8 / len(results)
        for i, r in enumerate(results):
            ax.bar(np.arange(len(metrics)) + i * width, [r.metrics.get(m, 0.0) for m in metrics], width, label=r.name)
        ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2)
        ax.set_xticklabels([dict(HEADLINE)[m].replace(" ", "\n", 2) for m in metrics], fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "headline.png", dpi=100)
        plt.close(fig)
        written.append("headline.png")
    return written


def run_suite(models: Sequence[PathLike | None], out_dir: PathLike | None = None, user: UserData | None = None,
              tasks: Sequence[str] | None = None, device: str | None = None) -> dict:
    """Evaluate each model; the first is the reference for deltas.

    Writes ``report.json``, ``report.md`` and the PNGs to ``out_dir`` (atomically, as a
    folder) when given. Returns ``{"models": [...], "metrics": {model: {...}}, "markdown": str}``.
    """
    results = []
    for index, model in enumerate(models):
        embedder = Embedder.from_pretrained(model, device=device)
        logger.info("evaluating %s", embedder.path)
        results.append(evaluate_embedder(embedder, _label(embedder.path, index), user, tasks))
    markdown = render_markdown(results)
    report = {"models": [r.name for r in results], "metrics": {r.name: r.metrics for r in results}, "markdown": markdown}
    if out_dir is not None:
        import json

        with atomic_path(out_dir, directory=True) as tmp:
            figures = _plots(results, tmp)
            (tmp / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"},
                                                        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            images = "\n".join(f"![{f}]({f})" for f in figures)
            (tmp / "report.md").write_text(f"# anlam evaluation\n\n{markdown}\n{images}\n", encoding="utf-8")
    return report
