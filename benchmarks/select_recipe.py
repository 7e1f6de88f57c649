"""Choose a recipe on dev splits of three kinds at once, under the do-no-harm rule.

    .venv/bin/python benchmarks/select_recipe.py [--steps 200] [--out runs/select] [--only NAME ...]
                                                 [--merges 0.25 0.5 0.75]

Each candidate trains the embedded base from the same seed for the same number of steps (one
decision per row against the row it names as its parent), then is scored on the dev splits of the
bank (ML-TR), the real text (d2l-tr) and general Turkish (STSb-TR, TQP dev half); nothing here looks
at a test split. Candidates may then be merged back with the base (weight-space interpolation).

The rule (docs/training.md): a candidate may ship only if no real-text or general metric falls more
than 0.005 below the base (``anlam.evaluate.harm``) and the domain gains (ML-TR dev Spearman above
the base). Among those that may ship, the choice is the highest ML-TR dev Spearman + ML-TR dev
retrieval MRR@10 + d2l-tr dev heading MRR@10. Output: one JSON line per candidate, and
OUT/selection.md with the table, each row's verdict and the harm it did.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anlam.evaluate import HARM_TOLERANCE, evaluate_embedder, harm, metric_names
from anlam.models import Embedder, load_sentence_transformer, resolve_model_path
from anlam.models.merge import merge_with_base
from anlam.train import load_recipe, train

TASKS = ("sts", "pairs", "retrieval", "robustness", "clustering", "d2l", "general")
# Every candidate starts from `quick` with the budget fixed by --steps; each row changes one thing
# against its parent (named in the comment), so each row measures one decision.
CANDIDATES: dict[str, dict] = {
    # parent: quick trained on the bank before this change (score it with --extra)
    "quick (bank pairs + triplets)": {},
    # parent: quick -- trained at the base's full length (512) instead of 64 tokens
    "quick, full length": {"max_seq_length": 0},
    # parent: quick -- real-text pairs from d2l-tr train chapters (MNRL), at 128 tokens: at the full
    # 512 the paragraph batches ran out of 24 GB. This is the new `quick` before its merge (--steps 150).
    "+ d2l pairs": {"max_seq_length": 128, "d2l_pairs": 400},
    # parent: + d2l pairs -- a five times lower learning rate keeps the base's geometry
    "+ d2l pairs, lr 1e-5": {"max_seq_length": 128, "d2l_pairs": 400, "lr": 1e-5},
    # parent: + d2l pairs -- English -> Turkish distillation from the frozen base
    "+ d2l pairs + distill": {"max_seq_length": 128, "d2l_pairs": 400, "distill": 800},
    # parent: + d2l pairs -- the bank's graded pair loss off: retrieval and real-text signal only
    "+ d2l pairs, no bank pairs": {"max_seq_length": 128, "d2l_pairs": 400, "pairs": "none"},
}
SHOWN = ["ml-tr-sts-dev_spearman_cosine", "ml-tr-retrieval-dev_cosine_mrr@10",
         "ml-tr-retrieval-unnamed-dev_cosine_mrr@10", "d2l-heading-dev_cosine_mrr@10",
         "d2l-heading-ascii-dev_cosine_mrr@10", "d2l-first-sentence-dev_cosine_mrr@10", "d2l-en2tr-dev_cosine_mrr@10",
         "d2l-glossary-en2tr-dev_cosine_mrr@10", "d2l-clustering-chapter-dev_v_measure", "stsb-tr-dev_spearman_cosine",
         "tqp-dev_cosine_mrr@10"]
CHOICE = ["ml-tr-sts-dev_spearman_cosine", "ml-tr-retrieval-dev_cosine_mrr@10", "d2l-heading-dev_cosine_mrr@10"]


def score(path: str | None, name: str) -> dict[str, float]:
    return evaluate_embedder(Embedder.from_pretrained(path, device="cpu"), name, tasks=TASKS, split="dev").metrics


def merged(tuned: Path, weight: float, out: Path) -> Path:
    """``weight * tuned + (1 - weight) * base`` saved to ``out`` (no retraining)."""
    model = load_sentence_transformer(str(tuned), device="cpu")
    merge_with_base(model, resolve_model_path("base"), weight)
    model.save_pretrained(str(out))
    return out


def verdict(base: dict[str, float], metrics: dict[str, float]) -> tuple[bool, dict[str, float]]:
    """(may ship, the guarded metrics it harms)."""
    harmed = harm(base, metrics, "dev")
    gains = metrics["ml-tr-sts-dev_spearman_cosine"] > base["ml-tr-sts-dev_spearman_cosine"]
    return not harmed and gains, harmed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/select"))
    parser.add_argument("--only", nargs="*", help="candidate names to train (default: all)")
    parser.add_argument("--merges", nargs="*", type=float, default=[], help="also merge each candidate at these weights")
    parser.add_argument("--reuse", action="store_true", help="score candidate folders already trained, do not retrain")
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=PATH", help="also score these model folders")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "scores.json"  # a re-run scores again only what it trains again
    rows: dict[str, dict[str, float]] = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else {}
    if "base" not in rows:
        rows["base"] = score("base", "base")
    for extra in args.extra:
        name, _, path = extra.partition("=")
        rows[name] = score(path, name)
        cache.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for i, (name, fields) in enumerate(CANDIDATES.items()):
        if args.only is not None and name not in args.only:
            continue
        folder = args.out / f"candidate-{i}"
        if not (args.reuse and folder.exists()):
            # every candidate is the old quick (64 tokens, no real text, no merge) plus its own fields
            recipe = load_recipe("quick", max_steps=args.steps, save_steps=10_000,
                                 **{"max_seq_length": 64, "d2l_pairs": 0, "merge_base": 1.0, **fields})
            train(folder, recipe, device="cpu", evaluate=False, overwrite=True)
            rows[name] = score(str(folder), name)
        for weight in args.merges:
            label = f"{name}, merged with the base at {weight}"
            rows[label] = score(str(merged(folder, weight, args.out / f"candidate-{i}-merge-{weight}")), label)
        cache.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    base = rows["base"]
    names = metric_names("dev")
    lines = ["| candidate | " + " | ".join(names[k] for k in SHOWN) + " | verdict |", "|---|" + "---|" * (len(SHOWN) + 1)]
    passing = {}
    for name, metrics in rows.items():
        ok, harmed = verdict(base, metrics)
        if name == "base":
            text = "reference"
        elif ok:
            text = "may ship"
            passing[name] = sum(metrics[k] for k in CHOICE)
        else:
            text = "harms " + ", ".join(f"{names[k]} {d:+.3f}" for k, d in harmed.items()) if harmed else "no domain gain"
        cells = [f"{metrics[k]:.4f}" if name == "base" else f"{metrics[k]:.4f} ({metrics[k] - base[k]:+.3f})" for k in SHOWN]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {text} |")
        print(json.dumps({"candidate": name, "verdict": text, **{k: metrics[k] for k in SHOWN}}, ensure_ascii=False))
    choice = max(passing, key=passing.get) if passing else "none: no candidate meets the rule"
    table = "\n".join(lines)
    (args.out / "selection.md").write_text(
        f"Dev splits only, {args.steps} steps per candidate from `quick`, seed 42; harm = more than "
        f"{HARM_TOLERANCE} below the base on a real-text or general metric.\n\n{table}\n\nChosen: {choice}\n",
        encoding="utf-8")
    print(table)
    print(f"chosen: {choice}")


if __name__ == "__main__":
    main()
