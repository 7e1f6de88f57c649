"""Commands ``anlam index build|add|delete|info`` and ``anlam search`` (see ``anlam.search``)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stdout
from anlam.cli.core import PrecisionOpt
from anlam.data import read_records
from anlam.errors import AnlamError
from anlam.search import Index
from anlam.search.hybrid import DENSE_WEIGHT
from anlam.search.store import DEFAULT_ANN_THRESHOLD, DEFAULT_EF_SEARCH

index_app = typer.Typer(help="Build and change search indexes over Turkish documents.", no_args_is_help=True)
app.add_typer(index_app, name="index")

ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="Model folder (default: the one the index records).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StrictOpt = Annotated[bool, typer.Option(help="Fail on invalid UTF-8 instead of skipping the document with a warning.")]
BatchOpt = Annotated[int, typer.Option(help="Passages per forward pass.")]
DocsArg = Annotated[list[Path], typer.Argument(help="txt, md, jsonl, csv or parquet files, or folders of them.")]


class Mode(str, Enum):
    dense = "dense"
    bm25 = "bm25"
    hybrid = "hybrid"


@index_app.command("build")
def build(
    docs: DocsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="New index folder to create.")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model folder or built-in name (default: the built-in tuned model; `base` for the raw base).")] = None,
    store: Annotated[str, typer.Option(help="embedded, milvus:PATH.db (Milvus Lite) or http://host:19530.")] = "embedded",
    max_words: Annotated[int, typer.Option(help="Longest passage, in words.")] = 120,
    overlap: Annotated[int, typer.Option(help="Sentences repeated at the start of the next passage.")] = 1,
    ann_threshold: Annotated[int, typer.Option(help="Passages from which the embedded store is approximate (HNSW).")] = DEFAULT_ANN_THRESHOLD,
    ef_search: Annotated[int, typer.Option(help="HNSW search breadth once approximate (more = slower, better recall).")] = DEFAULT_EF_SEARCH,
    strict: StrictOpt = False,
    batch_size: BatchOpt = 32,
    overwrite: Annotated[bool, typer.Option(help="Rebuild the index already in --out (in place; `index add` adds to it).")] = False,
    precision: PrecisionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Index documents: split them into passages, embed them, build BM25; write the index folder."""
    index = Index.build(docs, out, None if model is None else str(model), store=store, max_words=max_words,
                        overlap=overlap, ann_threshold=ann_threshold, ef_search=ef_search, strict=strict, batch_size=batch_size,
                        overwrite=overwrite, precision=precision.value if precision else "auto")
    _print_info(index, json_out)


@index_app.command("add")
def add(
    index: Annotated[Path, typer.Argument(help="Index folder.")],
    docs: DocsArg,
    model: ModelOpt = None,
    strict: StrictOpt = False,
    batch_size: BatchOpt = 32,
    json_out: JsonOpt = False,
) -> None:
    """Add documents to an index; a document whose id is already there is replaced."""
    report = Index.load(index, None if model is None else str(model)).add(docs, strict=strict, batch_size=batch_size)
    del report["deleted"]
    if json_out:
        print_jsonl([report])
    else:
        stdout.print(f"{index}: {report['documents']} document(s) added ({report['replaced']} replaced), "
                     f"{report['passages']} passage(s)")


@index_app.command("delete")
def delete(
    index: Annotated[Path, typer.Argument(help="Index folder.")],
    ids: Annotated[list[str], typer.Argument(help="Document ids (as `anlam search` shows them).")],
    json_out: JsonOpt = False,
) -> None:
    """Delete documents, with all their passages, by id."""
    deleted = Index.load(index).delete(ids)
    if json_out:
        print_jsonl([{"deleted": deleted}])
    else:
        stdout.print(f"{index}: {deleted} document(s) deleted")


@index_app.command("info")
def info(index: Annotated[Path, typer.Argument(help="Index folder.")], json_out: JsonOpt = False) -> None:
    """Documents, passages, model, store and vector index kind (exact or approximate) of an index."""
    _print_info(Index.load(index), json_out)


@app.command("search")
def search(
    index: Annotated[Path, typer.Argument(help="Index folder.")],
    query: Annotated[str | None, typer.Argument(help="The query (or use --queries).")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Hits per query.")] = 10,
    mode: Annotated[Mode, typer.Option(help="dense, bm25, or hybrid (z-score fusion of both, see docs/search.md).")] = Mode.hybrid,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="key=value on document metadata (id = document id); repeatable.")] = None,
    queries: Annotated[Path | None, typer.Option(help="JSON lines {\"query\": ...} ('-' = stdin) or a table with a query column; one JSON line of hits per query.")] = None,
    dense_weight: Annotated[float, typer.Option(help="Weight of the dense side against BM25's 1 in hybrid mode, for a four-word query (shorter queries lean more on dense, longer ones on BM25).")] = DENSE_WEIGHT,
    model: ModelOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ranked passages for a query, each with its score and document id, title, heading and position."""
    if (query is None) == (queries is None):
        raise AnlamError("give either a QUERY or --queries FILE")
    opened = Index.load(index, None if model is None else str(model))
    if queries is not None:
        records = read_records(queries, "query")
        for start in range(0, len(records), 256):
            batch = records[start : start + 256]
            results = opened.search_many([r["query"] for r in batch], k=k, mode=mode.value, filter=filters or None,
                                         dense_weight=dense_weight)
            print_jsonl({**r, "hits": [h.to_dict() for h in hits]} for r, hits in zip(batch, results))
        return
    assert query is not None  # one of the two, checked above
    hits = opened.search(query, k=k, mode=mode.value, filter=filters or None, dense_weight=dense_weight)
    if json_out:
        print_jsonl([{"query": query, "hits": [h.to_dict() for h in hits]}])
        return
    if not hits:
        stdout.print("no hits", markup=False)
    for rank, h in enumerate(hits, start=1):
        where = ", ".join(p for p in (h.heading or h.title, f"passage {h.position}") if p)
        text = h.text if len(h.text) <= 300 else h.text[:297] + "..."
        stdout.print(f"{rank:>2}. {h.score:.4f}  {h.id}  ({where})\n    {text}", markup=False, soft_wrap=True)


def _print_info(index: Index, json_out: bool) -> None:
    facts = index.info()
    if json_out:
        print_jsonl([facts])
        return
    rows = [[key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value]
            for key, value in facts.items() if key != "normalisation"]
    print_table(str(index.path), ["", ""], rows)
