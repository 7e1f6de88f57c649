"""The run: prepare the output folder, train on the sentence-transformers trainer, merge, save.

``SentenceTransformerTrainer`` owns the loop, checkpoints, resume and DDP under torchrun; anlam adds
nothing inside the loop. After it: weight arithmetic with the base and an optional expert
(``anlam.models.merge``), then the model, its card, the loss curve, and the completion marker last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from anlam.errors import AnlamError
from anlam.io import TRAINING_RUN, PathLike, check_output_folder, write_json
from anlam.models import load_sentence_transformer, pick_device, resolve_model_path
from anlam.models.merge import add_task_vector, merge_with_base
from anlam.train.card import render_card
from anlam.train.data import data_statistics, distillation_targets, training_data
from anlam.train.losses import build_losses, dataset_prompts
from anlam.train.recipes import Recipe, load_recipe

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MARKER = TRAINING_RUN.marker  # "anlam_training.json", written last: its presence means the run finished
STARTED = TRAINING_RUN.also[0]  # written first, removed after MARKER: a run of anlam's that has not finished


def _freeze_word_embeddings(model: SentenceTransformer) -> None:
    first = model[0]
    auto_model = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if auto_model is None or not hasattr(auto_model, "get_input_embeddings"):
        raise AnlamError("--freeze-embeddings: the first module of this model has no word-embedding matrix")
    auto_model.get_input_embeddings().weight.requires_grad_(False)


@dataclass
class TrainResult:
    """What a run produced; ``main`` is False on the non-zero ranks of a distributed run."""

    out: Path
    seconds: float
    steps: int
    log: list[dict]
    metrics: dict | None
    main: bool = True


def _prepare_out(out: Path, overwrite: bool, resume: bool, inputs: list) -> None:
    """Refuse anything in ``out`` but a run of ours (``anlam.io.check_output_folder``); then clear, resume or refuse it."""
    if check_output_folder(out, TRAINING_RUN, overwrite=True, inputs=inputs):  # True: a run of ours is there
        if overwrite:
            shutil.rmtree(out)
        elif is_finished(out):
            raise AnlamError(f"{out}: a finished model is already there (use --overwrite to replace it)")
        elif not resume:
            raise AnlamError(f"{out}: exists with an unfinished run (use --resume to continue it or --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    if not is_finished(out):
        write_json(out / STARTED, {"written_by": TRAINING_RUN.command})


def _loss_log(history: list[dict]) -> list[dict]:
    return [{"epoch": round(h["epoch"], 3), "step": h["step"], "loss": round(h["loss"], 4)} for h in history if "loss" in h]


def _loss_curve(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("anlam training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    out: PathLike,
    recipe: Recipe,
    *,
    base: PathLike | None = None,
    data: PathLike | None = None,
    columns: str | None = None,
    scale: float | None = None,
    device: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    evaluate: bool = True,
) -> TrainResult:
    """Fine-tune ``base`` with ``recipe`` into ``out`` (a plain sentence-transformers folder).

    Raises:
        AnlamError: bad data, a base that is not a model, an ``out`` that holds anything but an
            earlier run (or holds one, without ``overwrite``/``resume``), or a write error.
    """
    from datasets import Dataset, DatasetDict
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    out = Path(out)
    base_path = resolve_model_path(base or "base")  # the raw base, whatever the default model is
    datasets = training_data(recipe, data, columns, scale)  # validate data before touching anything
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not distributed or int(os.environ.get("RANK", "0")) == 0:
        _prepare_out(out, overwrite, resume, [base_path, data])
    device = pick_device(device)
    model = load_sentence_transformer(base_path, device=device)
    base_max_length = model.max_seq_length
    if recipe.max_seq_length:
        model.max_seq_length = recipe.max_seq_length
    if recipe.freeze_embeddings:
        _freeze_word_embeddings(model)
    if "distill" in datasets:
        datasets["distill"] = distillation_targets(model, datasets["distill"])
    names = list(datasets)
    train_dataset = DatasetDict({n: Dataset.from_pandas(f, preserve_index=False) for n, f in datasets.items()})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr,
        lr_scheduler_type=recipe.scheduler,
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of all steps (transformers 5)
        seed=recipe.seed,
        data_seed=recipe.seed,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=2,
        logging_steps=recipe.logging_steps,
        prompts=dataset_prompts(model, names),
        batch_sampler="no_duplicates",
        use_cpu=device == "cpu",
        ddp_backend="gloo" if distributed and device == "cpu" else None,
        report_to="none",
        disable_tqdm=False,
        dataloader_drop_last=distributed,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset if len(names) > 1 else train_dataset[names[0]],
        loss=(lambda ls: ls if len(names) > 1 else ls[names[0]])(build_losses(model, recipe, names)),
    )
    # a checkpoint is complete once the trainer has written its state file (the last thing it saves)
    checkpoints = sorted((p for p in (out / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                         key=lambda p: int(p.name.split("-")[1]))
    started = time.time()
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    seconds = time.time() - started
    log = _loss_log(trainer.state.log_history)
    expert = _train_expert(recipe, out, base_path, device, resume)
    if not trainer.is_world_process_zero():
        return TrainResult(out, seconds, trainer.state.global_step, log, None, main=False)
    if recipe.merge_base < 1.0:
        merge_with_base(model, base_path, recipe.merge_base)
    if expert:
        add_task_vector(model, base_path, str(expert), recipe.expert_weight)
        seconds += json.loads((expert / MARKER).read_text(encoding="utf-8"))["seconds"]
        shutil.rmtree(expert)
    model.max_seq_length = base_max_length  # a short training length is for speed, not for inference
    return _finish(model, out, recipe, base_path, data, datasets, log, seconds, trainer.state.global_step, evaluate, device)


def _train_expert(recipe: Recipe, out: Path, base_path: str, device: str, resume: bool) -> Path | None:
    """Train ``recipe.expert`` (a preset) from the same base into ``OUT/expert``; a finished one is reused on resume."""
    if not recipe.expert:
        return None
    folder = out / "expert"
    if not is_finished(folder):
        expert = load_recipe(recipe.expert, seed=recipe.seed)
        train(folder, expert, base=base_path, device=device, resume=resume, evaluate=False)
    return folder


def _finish(model: SentenceTransformer, out: Path, recipe: Recipe, base_path: str, data: PathLike | None,
            datasets: dict[str, pd.DataFrame], log: list[dict], seconds: float, steps: int, evaluate: bool,
            device: str) -> TrainResult:
    """Save the model, its card and the loss curve; the completion marker goes last."""
    if "query" in (model.prompts or {}):
        model.default_prompt_name = "query"  # SentenceTransformer(path).encode(texts) then embeds as anlam does
    try:
        model.save_pretrained(str(out))
        _loss_curve(log, out / "loss-curve.png")
        metrics = None
        markdown = None
        if evaluate:
            from anlam.evaluate import run_suite

            report = run_suite([base_path, str(out)], out / "eval", device=device, overwrite=True)
            metrics, markdown = report["metrics"], report["markdown"]
        stats = data_statistics(datasets)
        (out / "README.md").write_text(
            render_card(recipe=asdict(recipe), base=base_path, data=str(data or "ML-TR train"), stats=stats, log=log,
                        eval_markdown=markdown, seconds=seconds, steps=steps), encoding="utf-8")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        marker = {"recipe": asdict(recipe), "base": base_path, "data": str(data or "ML-TR train"), "data_stats": stats,
                  "seconds": round(seconds, 1), "steps": steps, "log": log, "metrics": metrics}
        tmp = out / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.rename(out / MARKER)
        (out / STARTED).unlink(missing_ok=True)
    except OSError as exc:
        raise AnlamError(f"{out}: cannot write the trained model ({exc.strerror or exc})") from None
    return TrainResult(out, seconds, steps, log, metrics)


def is_finished(path: PathLike) -> bool:
    """True when ``path`` holds a completed anlam training run."""
    return (Path(path) / MARKER).exists()

