"""Run the ``mteb`` package on an anlam model folder with no hub: local tasks from anlam's data.

mteb's registered tasks download their data from the Hugging Face hub. The tasks here subclass
mteb's abstract tasks (``AbsTaskSTS``, ``AbsTaskPairClassification``, ``AbsTaskRetrieval``,
``AbsTaskClustering``) and override ``load_data`` to fill ``self.dataset`` from data a subclass
supplies (anlam's own files for the builtin ones), so mteb's evaluators, metrics and result files
are used unchanged and nothing touches the network. ``BUILTIN`` holds tasks on STSb-TR test and
ML-TR test;
``run_mteb`` evaluates a model folder with ``mteb.evaluate`` and saves mteb's result JSON files
into a new local folder (``anlam.io.output_folder``).

Prompts: mteb picks a model prompt by task name, task type, then prompt type ("query" or
"document"). ``mteb_prompts`` maps anlam's prompt names onto those keys, so e5 reads "query: " on
both sides of STS, pair-classification and clustering (as ``anlam eval`` does) and
"query: " / "passage: " on the two sides of retrieval. A model with no prompts gets none.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import mteb
import pandas as pd
from datasets import Dataset
from mteb.abstasks import AbsTaskClustering, AbsTaskPairClassification, AbsTaskRetrieval, AbsTaskSTS
from mteb.abstasks.abstask import AbsTask
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models import SentenceTransformerEncoderWrapper
from mteb.types import EncodeKwargs

from anlam.data import mltr_clustering, mltr_pairs, mltr_retrieval, stsb_tr
from anlam.errors import AnlamError
from anlam.io import MTEB_RESULTS, check_output_folder, output_folder

logger = logging.getLogger(__name__)

PathLike = Path | str
SPLIT = "test"
SYMMETRIC_TYPES = ("STS", "PairClassification", "Clustering")  # both sides are the same kind of text
LocalTaskType = Literal["STS", "PairClassification", "Retrieval", "Clustering"]

MAIN_SCORE: dict[LocalTaskType, str] = {"STS": "cosine_spearman", "PairClassification": "max_ap",
                                        "Retrieval": "ndcg_at_10", "Clustering": "v_measure"}


def local_metadata(name: str, task_type: LocalTaskType, description: str) -> TaskMetadata:
    """mteb metadata for a Turkish text task whose data never comes from the hub."""
    return TaskMetadata(
        name=name, description=description, type=task_type, main_score=MAIN_SCORE[task_type],
        dataset={"path": f"local/{name}", "revision": "local"}, category="t2t", modalities=["text"],
        eval_splits=[SPLIT], eval_langs=["tur-Latn"], license="not specified", is_public=False,
    )


class _LocalTask:
    """A ``load_data`` that builds the test split in memory from a subclass's data, not the hub.

    mteb reads ``metadata`` from the class (it drops instance copies when unloading data), so a
    task is a subclass that sets ``metadata = local_metadata(...)`` and supplies its data.
    """

    dataset: Any  # mteb's AbsTask declares and reads it
    data_loaded: bool

    def _split(self) -> Any:
        raise NotImplementedError

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        # built afresh on every load: mteb's retrieval evaluator edits the split in place
        self.dataset = {"default": {SPLIT: self._split()}}
        self.data_loaded = True


def _pair_columns(pairs: pd.DataFrame, name: str) -> tuple[list[str], list[str], list[float]]:
    missing = [c for c in ("sentence_0", "sentence_1", "label") if c not in pairs.columns]
    if missing:
        raise AnlamError(f"task {name}: pairs need columns sentence_0, sentence_1, label "
                         f"(missing {', '.join(missing)})")
    if pairs.empty:
        raise AnlamError(f"task {name}: no pairs")
    return (pairs["sentence_0"].astype(str).tolist(), pairs["sentence_1"].astype(str).tolist(),
            pairs["label"].astype(float).tolist())


class LocalSTS(_LocalTask, AbsTaskSTS):
    """STS; ``pairs()`` gives ``sentence_0, sentence_1, label`` with labels in [0, 1]."""

    min_score, max_score = 0, 1

    def pairs(self) -> pd.DataFrame:
        raise NotImplementedError

    def _split(self) -> Dataset:
        first, second, labels = _pair_columns(self.pairs(), self.metadata.name)
        return Dataset.from_dict({"sentence1": first, "sentence2": second, "score": labels})


class LocalPairClassification(_LocalTask, AbsTaskPairClassification):
    """Binary pairs; ``pairs()`` as for STS, label >= 0.5 is positive."""

    def pairs(self) -> pd.DataFrame:
        raise NotImplementedError

    def _split(self) -> Dataset:
        first, second, labels = _pair_columns(self.pairs(), self.metadata.name)
        binary = [int(x >= 0.5) for x in labels]
        if len(set(binary)) < 2:
            raise AnlamError(f"task {self.metadata.name}: pair classification needs both positive and negative pairs")
        return Dataset.from_dict({"sentence1": first, "sentence2": second, "labels": binary})


class LocalRetrieval(_LocalTask, AbsTaskRetrieval):
    """Retrieval; ``retrieval()`` gives ``(queries, corpus, qrels)`` as ``anlam.data.mltr_retrieval``."""

    def retrieval(self) -> tuple[Mapping[str, str], Mapping[str, str], Mapping[str, set[str]]]:
        raise NotImplementedError

    def _split(self) -> RetrievalSplitData:
        queries, corpus, qrels = self.retrieval()
        missing = sorted(set(qrels) - set(queries)) + sorted({d for docs in qrels.values() for d in docs} - set(corpus))
        if missing:
            raise AnlamError(f"task {self.metadata.name}: qrels name {missing[0]!r}, "
                             "which is not in the queries or corpus")
        return RetrievalSplitData(
            queries=Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
            corpus=Dataset.from_dict({"id": list(corpus), "text": list(corpus.values())}),
            relevant_docs={q: dict.fromkeys(sorted(docs), 1) for q, docs in qrels.items()},
            top_ranked=None,
        )


class LocalClustering(_LocalTask, AbsTaskClustering):
    """Clustering; ``clustering()`` gives ``(sentences, labels)``; k = number of distinct labels.

    Every sentence is embedded (mteb's default embeds 4 % of a large set); mteb then runs k-means
    on ``n_clusters`` bootstrap samples as large as the set and reports the mean V-measure.
    """

    max_fraction_of_documents_to_embed = None

    def clustering(self) -> tuple[Sequence[str], Sequence[str]]:
        raise NotImplementedError

    def _split(self) -> Dataset:
        sentences, labels = self.clustering()
        if len(sentences) != len(labels) or len(set(labels)) < 2:
            raise AnlamError(f"task {self.metadata.name}: clustering needs one label per sentence "
                             "and two labels or more")
        self.max_documents_per_cluster = len(sentences)
        return Dataset.from_dict({"sentences": [str(s) for s in sentences], "labels": [str(x) for x in labels]})


class AnlamSTSbTR(LocalSTS):
    metadata = local_metadata("AnlamSTSbTR", "STS", "STSb-TR test (0-5 scores scaled to 0-1), shipped with anlam.")

    def pairs(self) -> pd.DataFrame:
        return stsb_tr(SPLIT)


class AnlamMLTRSTS(LocalSTS):
    metadata = local_metadata("AnlamMLTRSTS", "STS", "ML-TR test graded pairs, labels 0-1.")

    def pairs(self) -> pd.DataFrame:
        return mltr_pairs(SPLIT)


class AnlamMLTRPairClassification(LocalPairClassification):
    metadata = local_metadata("AnlamMLTRPairClassification", "PairClassification",
                              "ML-TR test: paraphrase (1) vs near-miss (0) pairs.")

    def pairs(self) -> pd.DataFrame:
        pairs = mltr_pairs(SPLIT)
        return pairs[pairs["grade"].isin(["paraphrase", "near-miss"])]


class AnlamMLTRRetrieval(LocalRetrieval):
    metadata = local_metadata("AnlamMLTRRetrieval", "Retrieval", "ML-TR test: user questions -> concept definitions.")

    def retrieval(self) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
        return mltr_retrieval(SPLIT)


class AnlamMLTRClustering(LocalClustering):
    metadata = local_metadata("AnlamMLTRClustering", "Clustering", "ML-TR test sentences by subfield.")

    def clustering(self) -> tuple[list[str], list[str]]:
        return mltr_clustering(SPLIT)


BUILTIN: dict[str, type[AbsTask]] = {
    "stsb-tr": AnlamSTSbTR,
    "ml-tr-sts": AnlamMLTRSTS,
    "ml-tr-pairs": AnlamMLTRPairClassification,
    "ml-tr-retrieval": AnlamMLTRRetrieval,
    "ml-tr-clustering": AnlamMLTRClustering,
}


def builtin_tasks(names: Sequence[str] | None = None) -> list[AbsTask]:
    """The local tasks on anlam's own data (all of ``BUILTIN`` by default).

    Raises:
        AnlamError: an unknown task name.
    """
    unknown = [n for n in names or () if n not in BUILTIN]
    if unknown:
        raise AnlamError(f"unknown mteb task {unknown[0]!r} (choose from {', '.join(BUILTIN)})")
    return [BUILTIN[n]() for n in names or BUILTIN]


def mteb_prompts(prompts: Mapping[str, str | None] | None) -> dict[str, str]:
    """anlam prompt names ("query", "passage") as mteb prompt keys (task types, "query", "document")."""
    prompts = prompts or {}
    query, passage = prompts.get("query"), prompts.get("passage") or prompts.get("document")
    out = {"query": query, **dict.fromkeys(SYMMETRIC_TYPES, query)} if query else {}
    return out | ({"document": passage} if passage else {})


def mteb_model(model: PathLike | None = None, device: str | None = None) -> SentenceTransformerEncoderWrapper:
    """An anlam model folder (None: the default built-in model) as an mteb encoder, with anlam's prompts.

    Its mteb name is ``anlam/<folder name>``, which names its results folder.
    """
    from anlam.models import Embedder

    embedder = Embedder.from_pretrained(model, device=device)
    st = embedder.model
    st.prompts = dict(mteb_prompts(st.prompts))  # what mteb reads; this in-memory copy only
    st.default_prompt_name = None
    logger.info("mteb prompts for %s: %s", embedder.path, st.prompts)
    with warnings.catch_warnings():  # mteb still calls a sentence-transformers method renamed in v6
        warnings.simplefilter("ignore", FutureWarning)
        wrapper = SentenceTransformerEncoderWrapper(st)
    name = f"anlam/{Path(embedder.path).name}"
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(update={"name": name, "revision": "local"})
    return wrapper


def run_mteb(model: PathLike | None = None, tasks: Sequence[str | AbsTask] | None = None, *,
             out: PathLike | None = None, device: str | None = None, batch_size: int = 32,
             show_progress: bool = False, overwrite: bool = False) -> dict[str, dict[str, float]]:
    """Evaluate a model folder on local mteb tasks offline; save mteb's result files under ``out``.

    Args:
        model: a sentence-transformers folder (None: the default built-in model; "base": the raw base).
        tasks: ``BUILTIN`` names and/or task objects (default: every builtin task).
        out: folder for mteb's results (``results/anlam__<model>/local/<Task>.json``), written
            only after every task ran; None writes nothing.
        overwrite: replace earlier results in ``out`` (see ``anlam.io.output_folder``).

    Returns:
        ``{task name: {"main_score": ..., every other test-split metric}}``.

    Raises:
        AnlamError: an unknown task name, malformed task data, or an ``out`` that may not be written.
    """
    chosen = [builtin_tasks([t])[0] if isinstance(t, str) else t for t in tasks] if tasks else builtin_tasks()
    if out is not None:
        check_output_folder(out, MTEB_RESULTS, overwrite, [model])  # before minutes of work
    encoder = mteb_model(model, device)
    encode_kwargs: EncodeKwargs = {"batch_size": batch_size, "show_progress_bar": show_progress}
    # no cache during the run: mteb's default (~/.cache/mteb, "only-missing") would hand back an
    # earlier model's results under the same local name, and a failed run would leave files behind
    result = mteb.evaluate(encoder, chosen, cache=None, co2_tracker=False, encode_kwargs=encode_kwargs,
                           show_progress_bar=show_progress)
    if out is not None:
        with output_folder(out, MTEB_RESULTS, overwrite, [model]) as tmp:
            cache = mteb.ResultCache(tmp)
            for task_result in result.task_results:
                cache.save_to_cache(task_result, encoder.mteb_model_meta, encode_kwargs=encode_kwargs)
    return {r.task_name: _flat(r.scores[SPLIT][0]) for r in result.task_results}


def _flat(scores: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric metrics of one split, main score first (mteb's NaN nAUC rows dropped)."""
    numbers = {k: float(v) for k, v in scores.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return {"main_score": numbers.pop("main_score")} | numbers
