"""Commands over data: ``data build`` (the ML-TR corpus), ``data d2l`` (the real-text extract), ``data check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stdout
from anlam.data import build_corpus, check_pairs

data_app = typer.Typer(help="Build the ML-TR corpus and the d2l-tr extract; check pair files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    out: Annotated[Path, typer.Option(help="New output folder (the shipped sets: src/anlam/data/mltr with --overwrite).")],
    bank: Annotated[Path | None, typer.Option(help="Concept bank folder (default: the shipped bank).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits and sampling.")] = 42,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier build in --out.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Build graded pairs, triplets, retrieval and clustering sets from the concept bank."""
    stats = build_corpus(out, bank, seed, overwrite)
    if json_out:
        print_jsonl([stats])
        return
    stdout.print(f"{stats['concepts']} concepts, {stats['subfields']} subfields, {stats['pairs']:,} pairs")
    print_table("pairs per grade", ["grade", "pairs"], stats["pairs_per_grade"].items())
    print_table("splits", ["split", "concepts", "pairs", "triplets"],
                ([s, stats["concepts_per_split"][s], stats["pairs_per_split"][s], stats["triplets_per_split"][s]]
                 for s in stats["pairs_per_split"]))


@data_app.command("d2l")
def data_d2l(
    src: Annotated[Path, typer.Argument(help="A d2l-tr checkout (chapter_*/ folders and TERMINOLOGY.md).")],
    out: Annotated[Path, typer.Option(help="New folder for blocks.parquet and glossary.csv.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier extract in --out.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Extract headings, prose paragraphs (with their English originals) and the glossary from d2l-tr."""
    from anlam.data.d2l import write

    counts = write(src, out, overwrite)
    if json_out:
        print_jsonl([counts])
    else:
        print_table(f"d2l-tr extract in {out}", ["what", "count"], counts.items())


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Pair file: CSV, TSV, JSONL, Parquet or a datasets folder.")],
    columns: Annotated[str | None, typer.Option(help="Map your columns: 'first,second,label'.")] = None,
    scale: Annotated[float | None, typer.Option(help="Divide labels by this (5 for 0-5 STS scores).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rows, label histogram, sentence lengths and every problem; exit 1 when there are errors."""
    report = check_pairs(file, columns, scale)
    if json_out:
        print_jsonl([report.as_dict()])
    else:
        stdout.print(f"{file}: {report.rows:,} rows, {report.duplicates} duplicate pair(s)")
        if report.label_histogram:
            print_table("labels", ["range", "pairs"], report.label_histogram.items())
        if report.length_words:
            print_table("sentence length (words)", ["statistic", "value"], report.length_words.items())
        for message in report.warnings:
            stdout.print(f"[yellow]warning:[/yellow] {message}")
        for message in report.errors:
            stdout.print(f"[red]error:[/red] {message}")
    if not report.ok:
        raise typer.Exit(1)
