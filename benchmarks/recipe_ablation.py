"""Choose the `best` recipe on the ML-TR *dev* split: short runs of each candidate, same budget.

    .venv/bin/python benchmarks/recipe_ablation.py [--steps 100] [--batch-size 16] [--out runs/ablation]

Every candidate trains the embedded base for the same number of steps from the same seed,
then is scored on ML-TR dev (STS Spearman, retrieval MRR@10, MRR@10 with queries typed without
Turkish letters) and STSb-TR dev. The test split is never looked at. Results: one JSON line per
candidate and a Markdown table in OUT/ablation.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anlam.evaluate import evaluate_embedder
from anlam.models import Embedder, load_sentence_transformer, resolve_model_path
from anlam.models.merge import merge_with_base
from anlam.train import load_recipe, train

# Each candidate adds one thing to the one before it, so each row measures one decision.
# AnglE and the card's CosineSimilarityLoss are measured on pairs alone, against CoSENT.
# Every run starts from the same neutral recipe on top of `quick`: its seeded subsets (1,600 ML-TR
# train pairs, 600 triplets; None keeps a preset's value), nothing mixed in. With so few ML-TR pairs a
# mixed-in set weighs more than in `best` (STSb-TR is 44 % of the pair rows here, 11 % there).
NEUTRAL = {"max_pairs": None, "typing_augment": 0, "triplets": False, "max_triplets": None, "general_sts": False,
           "general_tqp": 0, "matryoshka": [], "merge_base": 1.0}
CANDIDATES: dict[str, dict] = {
    "CosineSimilarity (card loss)": {"loss": "cosine"},
    "AnglE": {"loss": "angle"},
    "CoSENT": {"loss": "cosent"},
    "CoSENT + typing": {"loss": "cosent", "typing_augment": 3000},
    "+ STSb-TR": {"loss": "cosent", "typing_augment": 3000, "general_sts": True},
    "+ triplets (MNRL)": {"loss": "cosent", "typing_augment": 3000, "general_sts": True, "triplets": True},
    "+ TQP (MNRL)": {"loss": "cosent", "typing_augment": 3000, "general_sts": True, "triplets": True,
                     "general_tqp": 4000},
    "+ Matryoshka": {"loss": "cosent", "typing_augment": 3000, "general_sts": True, "triplets": True,
                     "general_tqp": 4000, "matryoshka": [384, 256, 128, 64]},
}
MERGES = (0.5, 0.75)  # weight-space interpolation with the base, applied to the last candidate
KEYS = ["ml-tr-sts-dev_spearman_cosine", "ml-tr-retrieval-dev_cosine_mrr@10", "ml-tr-retrieval-ascii-dev_cosine_mrr@10",
        "stsb-tr-dev_spearman_cosine"]


def score(path: str | None, name: str) -> dict[str, float]:
    result = evaluate_embedder(Embedder.from_pretrained(path, device="cpu"), name,
                               tasks=("sts", "retrieval", "robustness", "general"), split="dev")
    return {k: result.metrics[k] for k in KEYS}


def merged(tuned: Path, weight: float, out: Path) -> Path:
    """``weight * tuned + (1 - weight) * base`` saved to ``out`` (no retraining)."""
    model = load_sentence_transformer(str(tuned), device="cpu")
    merge_with_base(model, resolve_model_path("base"), weight)
    model.save_pretrained(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    args = parser.parse_args()
    rows = {"base (no training)": score("base", "base")}
    print(json.dumps({"candidate": "base", **rows["base (no training)"]}), flush=True)
    last = None
    for i, (name, fields) in enumerate(CANDIDATES.items()):
        if args.only and name not in args.only:
            continue
        recipe = load_recipe("quick", max_steps=args.steps, batch_size=args.batch_size, save_steps=10_000,
                             **{**NEUTRAL, **fields})
        last = args.out / f"candidate-{i}"
        train(last, recipe, device="cpu", evaluate=False, overwrite=True)
        rows[name] = score(str(last), name)
        print(json.dumps({"candidate": name, **rows[name]}), flush=True)
    for weight in MERGES if last else ():
        name = f"last, merged with the base at {weight}"
        rows[name] = score(str(merged(last, weight, args.out / f"merge-{weight}")), name)
        print(json.dumps({"candidate": name, **rows[name]}), flush=True)
    lines = ["| candidate | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + " |" for name, m in rows.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text(
        f"Ablation on ML-TR dev, {args.steps} steps x batch {args.batch_size} each, seed 42.\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
