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
from anlam.io import EVAL_REPORT, check_output_folder, output_folder
from anlam.models import Embedder
from anlam.text import ascii_fold, nfc, tr_upper

logger = logging.getLogger(__name__)

PathLike = Path | str

# The rows of the report, grouped as the do-no-harm rule reads them; ``{s}`` is the split.
GROUPS: dict[str, list[tuple[str, str]]] = {
    "domain (bank)": [
        ("ml-tr-{s}_spearman_cosine", "ML-TR STS Spearman"),
        ("ml-tr-{s}-pairs_cosine_ap", "Paraphrase vs near-miss AP"),
        ("ml-tr-{s}-pairs_cosine_f1", "Paraphrase vs near-miss best F1"),
        ("ml-tr-{s}-pairs_cosine_f1_threshold", "  threshold of best F1"),
        ("ml-tr-{s}-retrieval_cosine_mrr@10", "Question -> definition MRR@10"),
        ("ml-tr-{s}-retrieval_cosine_recall@1", "Question -> definition Recall@1"),
        ("ml-tr-{s}-retrieval-named_cosine_mrr@10", "  questions that name the concept"),
        ("ml-tr-{s}-retrieval-unnamed_cosine_mrr@10", "  questions that describe it unnamed"),
        ("ml-tr-{s}-retrieval-ascii_cosine_mrr@10", "  typed without Turkish letters"),
        ("ml-tr-{s}-retrieval-upper_cosine_mrr@10", "  typed in capitals"),
        ("ml-tr-{s}-clustering_v_measure", "Clustering by subfield, V-measure"),
    ],
    "real text (d2l-tr)": [
        ("d2l-{s}-heading_cosine_mrr@10", "Heading -> section MRR@10"),
        ("d2l-{s}-heading_cosine_ndcg@10", "Heading -> section nDCG@10"),
        ("d2l-{s}-heading_cosine_recall@10", "Heading -> section Recall@10"),
        ("d2l-{s}-heading-ascii_cosine_mrr@10", "  heading without Turkish letters"),
        ("d2l-{s}-heading-upper_cosine_mrr@10", "  heading in capitals"),
        ("d2l-{s}-first-sentence_cosine_mrr@10", "First sentence -> rest MRR@10"),
        ("d2l-{s}-en2tr_cosine_mrr@10", "English -> Turkish paragraph MRR@10"),
        ("d2l-{s}-tr2en_cosine_mrr@10", "Turkish -> English paragraph MRR@10"),
        ("d2l-{s}-glossary-en2tr_cosine_mrr@10", "Glossary EN -> TR term MRR@10"),
        ("d2l-{s}-glossary-tr2en_cosine_mrr@10", "Glossary TR -> EN term MRR@10"),
        ("d2l-{s}-clustering-chapter_v_measure", "Paragraphs by chapter, V-measure"),
        ("d2l-{s}-clustering-section_v_measure", "Paragraphs by section, V-measure"),
    ],
    "general Turkish": [
        ("stsb-tr-{s}_spearman_cosine", "STSb-TR Spearman"),
        ("tqp-{s}_cosine_mrr@10", "TQP paraphrase retrieval MRR@10"),
        ("tqp-{s}_cosine_recall@1", "TQP paraphrase retrieval Recall@1"),
    ],
}
TASKS = ("sts", "pairs", "retrieval", "robustness", "clustering", "d2l", "general", "user")
NOT_RANKED = {"ml-tr-{s}-pairs_cosine_f1_threshold"}
# the rule a tuned model must pass to ship (docs/training.md): these may not fall below the base
GUARDED_GROUPS = ("real text (d2l-tr)", "general Turkish")
HARM_TOLERANCE = 0.005
BAR_METRICS = ["ml-tr-{s}_spearman_cosine", "ml-tr-{s}-retrieval_cosine_mrr@10", "d2l-{s}-heading_cosine_mrr@10",
               "d2l-{s}-en2tr_cosine_mrr@10", "stsb-tr-{s}_spearman_cosine", "tqp-{s}_cosine_mrr@10"]


def metric_names(split: str) -> dict[str, str]:
    """Every reported metric key of ``split`` -> its display name."""
    return {key.format(s=split): name for rows in GROUPS.values() for key, name in rows}


def guarded_metrics(split: str) -> list[str]:
    """The metric keys the do-no-harm rule protects on ``split``."""
    return [key.format(s=split) for group in GUARDED_GROUPS for key, _ in GROUPS[group] if key not in NOT_RANKED]


def harm(base: dict[str, float], tuned: dict[str, float], split: str, tolerance: float = HARM_TOLERANCE) -> dict[str, float]:
    """The guarded metrics on which ``tuned`` falls more than ``tolerance`` below ``base``: key -> delta."""
    return {key: round(tuned[key] - base[key], 4) for key in guarded_metrics(split)
            if key in base and key in tuned and tuned[key] < base[key] - tolerance}


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
            out = self._original(missing, prompt=prompt, batch_size=self.batch_size, convert_to_numpy=True,
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
    split: str = "test"


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


def _tqp_retrieval(split: str) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
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
    qrels: dict[str, set[str]] = {}
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


def _with_variants(model, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, set[str]], name: str,
                   corpus_prompt: str = "passage") -> dict[str, float]:
    """The task as given, then with its queries typed without Turkish letters and in capitals."""
    metrics = _ir(model, queries, corpus, qrels, name, corpus_prompt)
    for variant, transform in (("ascii", ascii_fold), ("upper", tr_upper)):
        changed = {q: transform(text) for q, text in queries.items()}
        metrics |= _ir(model, changed, corpus, qrels, f"{name}-{variant}", corpus_prompt)
    return metrics


def _d2l(model, cache: CachedEncoder, query_prefix: str, split: str) -> dict[str, float]:
    """Real Turkish ML prose (anlam.data.d2l): headings, first sentences, translations, glossary, clusters."""
    from anlam.data.d2l import (d2l_blocks, d2l_glossary, first_sentence_retrieval, glossary_retrieval,
                                heading_retrieval, paragraph_clusters, translation_retrieval)

    blocks = d2l_blocks(split)
    glossary = d2l_glossary(split)
    name = f"d2l-{split}"
    metrics = _with_variants(model, *heading_retrieval(blocks), f"{name}-heading")
    metrics |= _ir(model, *first_sentence_retrieval(blocks), f"{name}-first-sentence")
    # translations are symmetric: both sides get the query prompt, as STS pairs do
    metrics |= _ir(model, *translation_retrieval(blocks, "en"), f"{name}-en2tr", corpus_prompt="query")
    metrics |= _ir(model, *translation_retrieval(blocks, "tr"), f"{name}-tr2en", corpus_prompt="query")
    metrics |= _ir(model, *glossary_retrieval(glossary, "en"), f"{name}-glossary-en2tr", corpus_prompt="query")
    metrics |= _ir(model, *glossary_retrieval(glossary, "tr"), f"{name}-glossary-tr2en", corpus_prompt="query")
    for by in ("chapter", "section"):
        paragraphs, labels = paragraph_clusters(blocks, by)
        metrics[f"{name}-clustering-{by}_v_measure"] = _v_measure(cache.vectors(paragraphs, query_prefix), labels)
    return metrics


def _bank_retrieval(model, split: str, robustness: bool) -> dict[str, float]:
    """Bank questions -> their concept's definition; also per question kind and as users type them."""
    queries, corpus, qrels = mltr_retrieval(split)
    name = f"ml-tr-{split}-retrieval"
    metrics = (_with_variants if robustness else _ir)(model, queries, corpus, qrels, name)
    for kind in ("named", "unnamed"):
        subset = {q: text for q, text in queries.items() if (":u" in q) == (kind == "unnamed")}
        if subset:
            metrics |= _ir(model, subset, corpus, {q: qrels[q] for q in subset}, f"{name}-{kind}")
    return metrics


def _check_request(tasks: Sequence[str] | None, split: str) -> None:
    """Unknown task names and splits are errors, never an empty or mislabelled report."""
    unknown = sorted(set(tasks or ()) - set(TASKS))
    if unknown:
        raise AnlamError(f"unknown task {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    if split not in ("dev", "test"):
        raise AnlamError(f"unknown split {split!r} (choose dev or test; train is what models learn from)")


def evaluate_embedder(embedder: Embedder, name: str, user: UserData | None = None, tasks: Sequence[str] | None = None,
                      split: str = "test") -> ModelResult:
    """Run every task of ``TASKS`` (or the named subset) on ``split`` (dev to choose recipes, test to report).

    Every metric key carries the split: ``ml-tr-dev_spearman_cosine``, ``d2l-test-heading_cosine_mrr@10``.

    Raises:
        AnlamError: an unknown task name, or a user evaluation file that is missing or malformed.
    """
    _check_request(tasks, split)
    tasks = set(tasks or TASKS)
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
        if "pairs" in tasks:
            binary = ml_pairs[ml_pairs["grade"].isin(["paraphrase", "near-miss"])]
            metrics |= _pairclass(binary, f"ml-tr-{split}-pairs")(model)
            for grade in ("paraphrase", "near-miss"):
                pair_scores[grade] = cosines(binary[binary["grade"] == grade])
        if "retrieval" in tasks or "robustness" in tasks:
            metrics |= _bank_retrieval(model, split, "robustness" in tasks)
        if "clustering" in tasks:
            sentences, labels = mltr_clustering(split)
            metrics[f"ml-tr-{split}-clustering_v_measure"] = _v_measure(cache.vectors(sentences, query_prefix), labels)
        if "d2l" in tasks:
            metrics |= _d2l(model, cache, query_prefix, split)
        if "general" in tasks:
            metrics |= _sts(stsb_tr(split), f"stsb-tr-{split}")(model)
            # question paraphrases are symmetric: both sides get the query prompt
            metrics |= _ir(model, *_tqp_retrieval(split), f"tqp-{split}", corpus_prompt="query")
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
    return ModelResult(name, clean, sts_scores, gold, pair_scores, split)


def _label(path: str, index: int) -> str:
    return f"{index + 1}: {Path(path).name}"


def _cells(row: list[float | None], ranked: bool) -> list[str]:
    present = [v for v in row if v is not None]
    best = max(present) if present and ranked and len(present) > 1 else None
    out = []
    for i, v in enumerate(row):
        if v is None:
            out.append("–")
            continue
        text = f"{v:.4f}"
        if i > 0 and row[0] is not None:
            text += f" ({v - row[0]:+.4f})"
        out.append(f"**{text}**" if v == best else text)
    return out


def render_markdown(results: list[ModelResult]) -> str:
    """Metrics as rows in their three groups, models as columns, best in bold, delta against the first.

    A last row per model names the guarded (real-text and general) metrics on which it falls more
    than ``HARM_TOLERANCE`` below the first model: the do-no-harm rule's verdict.
    """
    split = results[0].split
    header = "| metric | " + " | ".join(r.name for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    for group, rows in GROUPS.items():
        shown = []
        for key, label in rows:
            row = [r.metrics.get(key.format(s=split)) for r in results]
            if any(v is not None for v in row):
                shown.append(f"| {label} | " + " | ".join(_cells(row, key not in NOT_RANKED)) + " |")
        if shown:
            lines.append(f"| **{group}, {split}** |" + " |" * len(results))
            lines += shown
    user_keys = sorted({k for r in results for k in r.metrics if k.startswith("user-")})
    if user_keys:
        lines.append("| **your data** |" + " |" * len(results))
        lines += [f"| {key} | " + " | ".join(_cells([r.metrics.get(key) for r in results], True)) + " |" for key in user_keys]
    if len(results) > 1:
        names = metric_names(split)
        verdicts = ["reference"] + [
            ", ".join(f"{names[k]} {d:+.4f}" for k, d in harm(results[0].metrics, r.metrics, split).items()) or "no harm"
            for r in results[1:]]
        lines.append("| **do-no-harm (real text + general)** | " + " | ".join(verdicts) + " |")
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
            spearman = r.metrics.get(f"ml-tr-{r.split}_spearman_cosine", float("nan"))
            ax.set_title(f"{r.name}\nSpearman {spearman:.3f}", fontsize=9)
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
    split = results[0].split
    names = metric_names(split)
    metrics = [m.format(s=split) for m in BAR_METRICS if any(m.format(s=split) in r.metrics for r in results)]
    if metrics:
        fig, ax = plt.subplots(figsize=(9, 3.8))
        width = 0.8 / len(results)
        for i, r in enumerate(results):
            ax.bar(np.arange(len(metrics)) + i * width, [r.metrics.get(m, 0.0) for m in metrics], width, label=r.name)
        ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2)
        ax.set_xticklabels([names[m].replace(" ", "\n", 2) for m in metrics], fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "headline.png", dpi=100)
        plt.close(fig)
        written.append("headline.png")
    return written


def run_suite(models: Sequence[PathLike | None], out_dir: PathLike | None = None, user: UserData | None = None,
              tasks: Sequence[str] | None = None, device: str | None = None, split: str = "test",
              overwrite: bool = False) -> dict:
    """Evaluate each model on ``split``; the first is the reference for deltas and the do-no-harm verdict.

    Writes ``report.json``, ``report.md`` and the PNGs to ``out_dir`` (atomically, as a folder;
    an earlier report there only with ``overwrite``, see ``anlam.io.output_folder``) when given.
    Returns ``{"models": [...], "metrics": {model: {...}}, "markdown": str}``.
    """
    _check_request(tasks, split)
    inputs = [*models, *((user.pairs, user.queries, user.corpus, user.qrels) if user else ())]
    if out_dir is not None:
        check_output_folder(out_dir, EVAL_REPORT, overwrite, inputs)  # before minutes of work
    results = []
    for index, model in enumerate(models):
        embedder = Embedder.from_pretrained(model, device=device)
        logger.info("evaluating %s", embedder.path)
        results.append(evaluate_embedder(embedder, _label(embedder.path, index), user, tasks, split))
    markdown = render_markdown(results)
    report = {"models": [r.name for r in results], "split": split, "metrics": {r.name: r.metrics for r in results},
              "harm": {r.name: harm(results[0].metrics, r.metrics, split) for r in results[1:]}, "markdown": markdown}
    if out_dir is not None:
        import json

        with output_folder(out_dir, EVAL_REPORT, overwrite, inputs) as tmp:
            figures = _plots(results, tmp)
            (tmp / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"},
                                                        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            images = "\n".join(f"![{f}]({f})" for f in figures)
            (tmp / "report.md").write_text(f"# anlam evaluation\n\n{markdown}\n{images}\n", encoding="utf-8")
    return report
