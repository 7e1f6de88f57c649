"""``anlam train``: presets on the sentence-transformers trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anlam.cli import app
from anlam.cli.common import print_table, stdout


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="New output model folder.")],
    preset: Annotated[str, typer.Option(help="card (the original recipe), quick, best, or sts-expert.")] = "card",
    config: Annotated[Path | None, typer.Option(help="TOML file with recipe fields (overrides the preset).")] = None,
    base: Annotated[Path | None, typer.Option(help="Base model folder (default: the embedded e5-small).")] = None,
    data: Annotated[Path | None, typer.Option(help="Your pair file (default: the preset's own, ML-TR train).")] = None,
    columns: Annotated[str | None, typer.Option(help="Column mapping for --data: 'first,second,label'.")] = None,
    scale: Annotated[float | None, typer.Option(help="Divide --data labels by this (5 for 0-5 scores).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step (per device).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    save_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    freeze_embeddings: Annotated[bool | None, typer.Option("--freeze-embeddings/--train-embeddings",
                                                           help="Keep the word-embedding matrix fixed.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: automatic).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier run in --out.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last checkpoint.")] = False,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Evaluate base vs tuned at the end.")] = True,
) -> None:
    """Fine-tune a base model; the folder loads with plain SentenceTransformer(path)."""
    from anlam.train import load_recipe, train

    recipe = load_recipe(preset, config, epochs=epochs, batch_size=batch_size, lr=lr, max_steps=max_steps,
                         save_steps=save_steps, freeze_embeddings=freeze_embeddings)
    result = train(out, recipe, base=base, data=data, columns=columns, scale=scale, device=device,
                   overwrite=overwrite, resume=resume, evaluate=evaluate)
    if not result.main:
        return
    print_table("training log", ["Epoch", "Step", "Training Loss"],
                ([f"{r['epoch']:.4f}", r["step"], f"{r['loss']:.4f}"] for r in result.log[-15:]))
    expert = f" + the {recipe.expert} run" if recipe.expert else ""
    stdout.print(f"{result.steps} steps{expert} in {result.seconds / 60:.1f} min -> {result.out}")
    if result.metrics:
        stdout.print((result.out / "eval" / "report.md").read_text(encoding="utf-8"))
