"""``anlam eval``: the evaluation suite over one or more models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stdout


@app.command("eval")
def eval_command(
    models: Annotated[list[Path] | None, typer.Argument(help="Model folders or built-in names (base, anlam-ml-tr-small); the first is the reference (default: base).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write report.md, report.json and PNGs to this new folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier report in --out.")] = False,
    pairs: Annotated[Path | None, typer.Option(help="Your own labelled pairs (CSV/TSV/JSONL/Parquet).")] = None,
    columns: Annotated[str | None, typer.Option(help="Column mapping for --pairs: 'first,second,label'.")] = None,
    scale: Annotated[float | None, typer.Option(help="Divide --pairs labels by this (5 for 0-5 scores).")] = None,
    queries: Annotated[Path | None, typer.Option(help="Your queries: columns id, text.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Your corpus: columns id, text.")] = None,
    qrels: Annotated[Path | None, typer.Option(help="Relevance: columns query_id, doc_id.")] = None,
    task: Annotated[list[str] | None, typer.Option(
        help="Only these tasks: sts, pairs, retrieval, robustness, clustering, d2l, general, user.")] = None,
    split: Annotated[str, typer.Option(help="dev (to choose between recipes) or test (to report, once).")] = "test",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: automatic).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print every metric as JSON.")] = False,
) -> None:
    """Evaluate models on the bank (ML-TR), real text (d2l-tr) and general Turkish (STSb-TR, TQP), and your files.

    One table, grouped, with deltas against the first model and the do-no-harm verdict.
    """
    from anlam.evaluate import UserData, run_suite

    user = UserData(pairs, columns, scale, queries, corpus, qrels)
    report = run_suite(models or ["base"], out, user=user, tasks=task, device=device, split=split, overwrite=overwrite)
    if json_out:
        print_jsonl([{k: report[k] for k in ("models", "split", "metrics", "harm")}])
    else:
        stdout.print(report["markdown"])
        if out:
            stdout.print(f"report written to {out}")


@app.command("mteb")
def mteb_command(
    model: Annotated[Path | None, typer.Argument(help="Model folder or built-in name (default: base).")] = None,
    task: Annotated[list[str] | None, typer.Option(
        help="Only these: stsb-tr, ml-tr-sts, ml-tr-pairs, ml-tr-retrieval, ml-tr-clustering.")] = None,
    out: Annotated[Path | None, typer.Option(help="Save mteb's result JSON files in this new folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace earlier results in --out.")] = False,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: automatic).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line per task with every metric.")] = False,
) -> None:
    """Run the mteb package offline on local tasks built from STSb-TR and ML-TR test."""
    from anlam.evaluate.mteb import BUILTIN, run_mteb

    scores = run_mteb(model or "base", task, out=out, device=device, batch_size=batch_size, show_progress=True,
                      overwrite=overwrite)
    if json_out:
        print_jsonl([{"task": name} | metrics for name, metrics in scores.items()])
    else:
        metric = {cls.metadata.name: cls.metadata.main_score for cls in BUILTIN.values()}
        rows = [[name, metric[name], m["main_score"]] for name, m in scores.items()]
        print_table(None, ["task", "main score", "value"], rows)
        if out:
            stdout.print(f"mteb results written to {out}")
