"""Commands ``anlam export`` and ``anlam base prune-vocab`` (see ``anlam.export``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stderr, stdout
from anlam.cli.core import base_app

ModelArg = Annotated[Path | None, typer.Argument(help="Model folder or built-in name (default: the built-in tuned model; `base` for the raw base).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="New folder to create.")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace this command's earlier output in --out.")]
CorpusOpt = Annotated[list[Path] | None, typer.Option(
    "--corpus", "-c", help="Turkish text: .txt lines, or every text column of .csv/.tsv/.jsonl/.parquet "
    "(repeatable; default: ML-TR, STSb-TR and TQP train+dev).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class Format(str, Enum):
    onnx = "onnx"
    onnx_int8 = "onnx-int8"
    openvino_int8 = "openvino-int8"
    static = "static"


def _texts(corpus: list[Path] | None) -> list[str] | None:
    """Every text of every --corpus file (each text column of a table), cleaned, each once."""
    from anlam.data import read_texts
    from anlam.export import unique_texts

    return unique_texts(text for path in corpus for text in read_texts(path, column=None)) if corpus else None


@app.command("export")
def export(
    out: OutOpt,
    model: ModelArg = None,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="onnx, onnx-int8, openvino-int8 (the fastest) or static.")] = Format.openvino_int8,
    corpus: CorpusOpt = None,
    calibration_size: Annotated[int, typer.Option(help="Texts that calibrate openvino-int8.")] = 300,
    pca_dims: Annotated[int, typer.Option(help="Dimension of static embeddings (0: the model's).")] = 256,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a model for fast CPU inference; the folder works with --model everywhere."""
    from anlam.export import export_model

    with stderr.status(f"exporting {fmt.value} (minutes on a laptop)..."):
        manifest = export_model(model, out, fmt.value, texts=_texts(corpus), calibration_size=calibration_size,
                                pca_dims=pca_dims or None, overwrite=overwrite)
    if json_out:
        print_jsonl([{"out": str(out), **manifest}])
        return
    print_table(f"exported to {out}", ["key", "value"], [(k, v) for k, v in manifest.items() if k != "extra_files"])


@base_app.command("prune-vocab")
def prune_vocab(
    out: OutOpt,
    model: ModelArg = None,
    corpus: CorpusOpt = None,
    check: Annotated[Path | None, typer.Option(help="Texts (one per line) to measure the change on "
                                                    "(default: ML-TR and STSb-TR test sentences).")] = None,
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Keep only the vocabulary Turkish and English text uses; report size and quality change."""
    from anlam.data import read_texts
    from anlam.export import prune_vocab as prune

    check_texts = read_texts(check, plain=True) if check else None
    with stderr.status("pruning the vocabulary..."):
        report = prune(model, out, texts=_texts(corpus), check_texts=check_texts, overwrite=overwrite)
    if json_out:
        print_jsonl([{"out": str(out), **report}])
        return
    rows = [
        ("vocabulary pieces", report["pieces_before"], report["pieces_after"]),
        ("parameters", report["params_before"], report["params_after"]),
        ("weights (MB)", round(report["bytes_before"] / 1e6, 1), round(report["bytes_after"] / 1e6, 1)),
    ]
    print_table(f"pruned into {out}", ["", "before", "after"], rows)
    stdout.print(f"on {report['check_texts']} check texts: {report['check_same_tokens']:.1%} tokenised as before, "
                 f"cosine to the original mean {report['check_mean_cosine']:.4f}, min {report['check_min_cosine']:.4f}")
