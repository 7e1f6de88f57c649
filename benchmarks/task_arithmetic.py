"""Can a general-Turkish STS expert be added to a domain run? Task arithmetic, scored on dev only.

    .venv/bin/python benchmarks/task_arithmetic.py DOMAIN_RUN [--expert EXPERT] [--out runs/task-arithmetic]

DOMAIN_RUN is a tuned model *before* any merge with the base (e.g. `best` trained with
`merge_base = 1.0` and `expert = ""`). Without --expert the script first trains the `sts-expert`
preset (CoSENT on STSb-TR train alone) from the embedded base. It then scores on ML-TR dev and
STSb-TR dev

    base + a * (domain - base) + b * (expert - base)

for a grid of (a, b) (Ilharco et al., "Editing models with task arithmetic", 2023), built with
`anlam.models.merge`, the same `merge_with_base` and `add_task_vector` that `anlam train` calls.
a < 1, b = 0 is the plain merge with the base. The test split is never looked at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anlam.models import load_sentence_transformer, resolve_model_path
from anlam.models.merge import add_task_vector, merge_with_base
from anlam.train import load_recipe, train
from recipe_ablation import KEYS, score  # same dev scoring as the recipe ablation

GRID = ((1.0, 0.0), (0.75, 0.0), (0.0, 1.0), (1.0, 0.5), (1.0, 0.75), (1.0, 1.0), (0.75, 0.75), (0.75, 1.0))


def combine(domain: str, expert: str, a: float, b: float, out: Path) -> Path:
    """``base + a * (domain - base) + b * (expert - base)``, saved to ``out``."""
    base = resolve_model_path("base")
    model = load_sentence_transformer(domain, device="cpu")
    merge_with_base(model, base, a)
    add_task_vector(model, base, expert, b)
    model.save_pretrained(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("domain", help="the tuned domain model, unmerged")
    parser.add_argument("--expert", help="an already trained expert (default: train the sts-expert preset)")
    parser.add_argument("--out", type=Path, default=Path("runs/task-arithmetic"))
    args = parser.parse_args()
    expert = args.expert
    if not expert:
        expert = str(args.out / "expert")
        train(expert, load_recipe("sts-expert"), device="cpu", evaluate=False, overwrite=True)
    rows = {}
    for a, b in GRID:
        name = f"a={a}, b={b}"
        rows[name] = score(str(combine(args.domain, expert, a, b, args.out / "combined")), name)
        print(json.dumps({"a": a, "b": b, **rows[name]}), flush=True)
    lines = ["| domain a, expert b | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + " |" for name, m in rows.items()]
    header = f"Task arithmetic on dev; domain {args.domain}, expert {expert}.\n\n"
    (args.out / "task-arithmetic.md").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
