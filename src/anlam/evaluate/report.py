"""The report: metrics in their three groups, models side by side, the do-no-harm verdict, plots and files.

``run_suite`` evaluates each model with ``anlam.evaluate.suite.evaluate_embedder`` and writes
``report.json``, ``report.md`` and the PNGs. The rows (``GROUPS``) name tasks and metrics; the split
completes each key (``metric_key``), so one table serves dev and test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anlam.evaluate.suite import ModelResult, UserData, check_request, evaluate_embedder, metric_key
from anlam.io import EVAL_REPORT, check_output_folder, output_folder
from anlam.models import Embedder

logger = logging.getLogger(__name__)

PathLike = Path | str

# The rows of the report, grouped as the do-no-harm rule reads them: (task, metric, display name).
GROUPS: dict[str, list[tuple[str, str, str]]] = {
    "domain (bank)": [
        ("ml-tr-sts", "spearman_cosine", "ML-TR STS Spearman"),
        ("ml-tr-pairs", "cosine_ap", "Paraphrase vs near-miss AP"),
        ("ml-tr-pairs", "cosine_f1", "Paraphrase vs near-miss best F1"),
        ("ml-tr-pairs", "cosine_f1_threshold", "  threshold of best F1"),
        ("ml-tr-retrieval", "cosine_mrr@10", "Question -> definition MRR@10"),
        ("ml-tr-retrieval", "cosine_recall@1", "Question -> definition Recall@1"),
        ("ml-tr-retrieval-named", "cosine_mrr@10", "  questions that name the concept"),
        ("ml-tr-retrieval-unnamed", "cosine_mrr@10", "  questions that describe it unnamed"),
        ("ml-tr-retrieval-ascii", "cosine_mrr@10", "  typed without Turkish letters"),
        ("ml-tr-retrieval-upper", "cosine_mrr@10", "  typed in capitals"),
        ("ml-tr-clustering", "v_measure", "Clustering by subfield, V-measure"),
    ],
    "real text (d2l-tr)": [
        ("d2l-heading", "cosine_mrr@10", "Heading -> section MRR@10"),
        ("d2l-heading", "cosine_ndcg@10", "Heading -> section nDCG@10"),
        ("d2l-heading", "cosine_recall@10", "Heading -> section Recall@10"),
        ("d2l-heading-ascii", "cosine_mrr@10", "  heading without Turkish letters"),
        ("d2l-heading-upper", "cosine_mrr@10", "  heading in capitals"),
        ("d2l-first-sentence", "cosine_mrr@10", "First sentence -> rest MRR@10"),
        ("d2l-en2tr", "cosine_mrr@10", "English -> Turkish paragraph MRR@10"),
        ("d2l-tr2en", "cosine_mrr@10", "Turkish -> English paragraph MRR@10"),
        ("d2l-glossary-en2tr", "cosine_mrr@10", "Glossary EN -> TR term MRR@10"),
        ("d2l-glossary-tr2en", "cosine_mrr@10", "Glossary TR -> EN term MRR@10"),
        ("d2l-clustering-chapter", "v_measure", "Paragraphs by chapter, V-measure"),
        ("d2l-clustering-section", "v_measure", "Paragraphs by section, V-measure"),
    ],
    "general Turkish": [
        ("stsb-tr", "spearman_cosine", "STSb-TR Spearman"),
        ("tqp", "cosine_mrr@10", "TQP paraphrase retrieval MRR@10"),
        ("tqp", "cosine_recall@1", "TQP paraphrase retrieval Recall@1"),
    ],
}
NOT_RANKED = {("ml-tr-pairs", "cosine_f1_threshold")}
# the rule a tuned model must pass to ship (docs/training.md): these may not fall below the base
GUARDED_GROUPS = ("real text (d2l-tr)", "general Turkish")
HARM_TOLERANCE = 0.005
BAR_METRICS = [("ml-tr-sts", "spearman_cosine"), ("ml-tr-retrieval", "cosine_mrr@10"), ("d2l-heading", "cosine_mrr@10"),
               ("d2l-en2tr", "cosine_mrr@10"), ("stsb-tr", "spearman_cosine"), ("tqp", "cosine_mrr@10")]


def metric_names(split: str) -> dict[str, str]:
    """Every reported metric key of ``split`` -> its display name."""
    return {metric_key(task, metric, split): name for rows in GROUPS.values() for task, metric, name in rows}


def guarded_metrics(split: str) -> list[str]:
    """The metric keys the do-no-harm rule protects on ``split``."""
    return [metric_key(task, metric, split) for group in GUARDED_GROUPS for task, metric, _ in GROUPS[group]
            if (task, metric) not in NOT_RANKED]


def harm(base: dict[str, float], tuned: dict[str, float], split: str,
         tolerance: float = HARM_TOLERANCE) -> dict[str, float]:
    """The guarded metrics on which ``tuned`` falls more than ``tolerance`` below ``base``: key -> delta."""
    return {key: round(tuned[key] - base[key], 4) for key in guarded_metrics(split)
            if key in base and key in tuned and tuned[key] < base[key] - tolerance}


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
        for task, metric, label in rows:
            row = [r.metrics.get(metric_key(task, metric, split)) for r in results]
            if any(v is not None for v in row):
                shown.append(f"| {label} | " + " | ".join(_cells(row, (task, metric) not in NOT_RANKED)) + " |")
        if shown:
            lines.append(f"| **{group}, {split}** |" + " |" * len(results))
            lines += shown
    user_keys = sorted({k for r in results for k in r.metrics if k.startswith("user-")})
    if user_keys:
        lines.append("| **your data** |" + " |" * len(results))
        lines += [f"| {key} | " + " | ".join(_cells([r.metrics.get(key) for r in results], True)) + " |"
                  for key in user_keys]
    if len(results) > 1:
        names = metric_names(split)
        verdicts = ["reference"] + [
            ", ".join(f"{names[k]} {d:+.4f}" for k, d in harm(results[0].metrics, r.metrics, split).items())
            or "no harm" for r in results[1:]]
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
            spearman = r.metrics.get(metric_key("ml-tr-sts", "spearman_cosine", r.split), float("nan"))
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
    keys = [metric_key(task, metric, split) for task, metric in BAR_METRICS]
    metrics = [key for key in keys if any(key in r.metrics for r in results)]
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


def run_suite(models: Sequence[PathLike | None], out_dir: PathLike | None = None, *, user: UserData | None = None,
              tasks: Sequence[str] | None = None, device: str | None = None, split: str = "test",
              overwrite: bool = False) -> dict[str, Any]:
    """Evaluate each model on ``split``; the first is the reference for deltas and the do-no-harm verdict.

    Writes ``report.json``, ``report.md`` and the PNGs to ``out_dir`` (atomically, as a folder;
    an earlier report there only with ``overwrite``, see ``anlam.io.output_folder``) when given.
    Returns ``{"models": [...], "split": ..., "metrics": {model: {...}}, "harm": {...}, "markdown": str}``.

    Raises:
        AnlamError: an unknown task or split, a model that cannot be loaded, a malformed user file,
            or an ``out_dir`` that may not be written.
    """
    check_request(tasks, split)
    inputs = [*models, *((user.pairs, user.queries, user.corpus, user.qrels) if user else ())]
    if out_dir is not None:
        check_output_folder(out_dir, EVAL_REPORT, overwrite, inputs)  # before minutes of work
    results = []
    for index, model in enumerate(models):
        embedder = Embedder.from_pretrained(model, device=device)
        logger.info("evaluating %s", embedder.path)
        results.append(evaluate_embedder(embedder, _label(embedder.path, index), user=user, tasks=tasks, split=split))
    markdown = render_markdown(results)
    report = {"models": [r.name for r in results], "split": split, "metrics": {r.name: r.metrics for r in results},
              "harm": {r.name: harm(results[0].metrics, r.metrics, split) for r in results[1:]}, "markdown": markdown}
    if out_dir is not None:
        with output_folder(out_dir, EVAL_REPORT, overwrite, inputs) as tmp:
            figures = _plots(results, tmp)
            (tmp / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"},
                                                        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            images = "\n".join(f"![{f}]({f})" for f in figures)
            (tmp / "report.md").write_text(f"# anlam evaluation\n\n{markdown}\n{images}\n", encoding="utf-8")
    return report
