"""Choose the `best` recipe on the ML-TR *dev* split: short runs of each candidate, same budget.

    .venv/bin/python benchmarks/recipe_ablation.py [--steps 80] [--batch-size 16] [--out runs/ablation]

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
from anlam.models import Embedder
from anlam.train import load_recipe, train

CANDIDATES: dict[str, dict] = {
    "card-loss (CosineSimilarity)": {"loss": "cosine"},
    "CoSENT": {"loss": "cosent"},
    "AnglE": {"loss": "angle"},
    "CoSENT + typing twins": {"loss": "cosent", "typing_augment": 400},
    "CoSENT + typing + STSb-TR": {"loss": "cosent", "typing_augment": 400, "general_sts": True},
    "CoSENT + typing + STSb-TR + triplets (MNRL)": {"loss": "cosent", "typing_augment": 400, "general_sts": True,
                                                    "triplets": True},
}
KEYS = ["ml-tr-dev_spearman_cosine", "ml-tr-retrieval_cosine_mrr@10", "ml-tr-retrieval-ascii_cosine_mrr@10",
        "stsb-tr-dev_spearman_cosine"]


def score(path: str | None, name: str) -> dict[str, float]:
    result = evaluate_embedder(Embedder.from_pretrained(path, device="cpu"), name,
                               tasks=("sts", "retrieval", "robustness"), split="dev")
    return {k: result.metrics[k] for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    args = parser.parse_args()
    rows = {"base (no training)": score(None, "base")}
    print(json.dumps({"candidate": "base", **rows["base (no training)"]}), flush=True)
    for i, (name, fields) in enumerate(CANDIDATES.items()):
        if args.only and name not in args.only:
            continue
        recipe = load_recipe("quick", max_steps=args.steps, batch_size=args.batch_size, save_steps=10_000,
                             **{"typing_augment": 0, **fields})
        out = args.out / f"candidate-{i}"
        train(out, recipe, device="cpu", evaluate=False, overwrite=True)
        rows[name] = score(str(out), name)
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
