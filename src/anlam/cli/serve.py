"""``anlam serve``: the HTTP API (see ``anlam.serve``) over one model and, optionally, one index."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, cast

import typer

from anlam.cli import app
from anlam.cli.core import PrecisionOpt

logger = logging.getLogger("anlam")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model folder or built-in name (default: the index's model, else the built-in tuned model).")] = None,
    index: Annotated[Path | None, typer.Option(help="Index folder to serve on /v1/search.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback is reachable from other machines.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="ANLAM_API_KEY", show_envvar=True, help="Require 'Authorization: Bearer KEY' on /v1/*.")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Texts per merged batch (one encode call).")] = 64,
    max_batch_tokens: Annotated[int, typer.Option(help="Texts x longest text, in tokens, per merged forward pass.")] = 16384,
    encode_batch_size: Annotated[int, typer.Option(help="Texts per forward pass inside a merged batch (length-sorted; a GPU wants more).")] = 16,
    max_wait_ms: Annotated[float, typer.Option(help="How long an idle server waits to fill a batch.")] = 5.0,
    queue_size: Annotated[int, typer.Option(help="Requests waiting at most; beyond it 503 with Retry-After.")] = 256,
    max_inputs: Annotated[int, typer.Option(help="Texts per request; beyond it 413.")] = 2048,
    max_chars: Annotated[int, typer.Option(help="Characters per text; beyond it 413.")] = 8192,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="One forward pass per request.")] = False,
    truncate: Annotated[bool, typer.Option("--truncate", help="Embed the first tokens of an input longer than the model reads, instead of answering 413 (a request's \"truncate\" overrides it).")] = False,
    paraphrase: Annotated[bool, typer.Option("--paraphrase/--no-paraphrase", help="Serve /v1/paraphrase (its calibration is read, or fitted once and cached, at start-up).")] = True,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow browsers from this origin (repeatable); CORS is off without it.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Model id reported by /v1/models (default: the folder's name).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda if present).")] = None,
    precision: PrecisionOpt = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for the model (default: one per core); 1 suits a shared machine or several servers per box.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Batches an int8 or exported model runs at once, sharing --threads (default: one per thread); a torch model runs one at a time.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the model over HTTP: OpenAI-compatible /v1/embeddings, /v1/similarity, /v1/paraphrase, /v1/search."""
    from anlam.models import Embedder, resolve_model_path
    from anlam.serve import ServeSettings, create_app, run_server

    settings = ServeSettings(
        max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens, encode_batch_size=encode_batch_size,
        max_wait_ms=max_wait_ms,
        queue_size=queue_size, max_inputs=max_inputs, max_chars=max_chars, batching=not no_batching,
        api_key=api_key, cors_origins=cors_origin or (), model_name=model_name, truncate=truncate,
        paraphrase=paraphrase)
    settings.check()
    import torch

    from anlam.models.exported import set_runtime_threads

    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()  # torch's default: one per physical core
    # An exported model runs one batch per stream, one thread each by default: on 2 cores, two
    # batches side by side went from 242 to 417 requests/s at 32 clients (int8, benchmarks/serve.py,
    # docs/export.md); the batcher shares a batch between idle streams. A torch model runs one
    # batch at a time on every core (two at once, one thread each, measured slower).
    set_runtime_threads(max(threads, workers or 1), streams=workers or threads)
    opened = None
    if index is not None:
        from anlam.search import Index

        opened = Index.load(index, None if model is None else str(model), device=device)
        recorded = opened.manifest["model"]
        if precision is not None and precision.value not in ("auto", recorded.get("precision", "fp32")):
            logger.warning("%s was built with %s weights; its queries use the same (--precision %s ignored)",
                           index, recorded.get("precision", "fp32"), precision.value)
        # loads the index's weights and checks they match it; from a path, always an Embedder
        embedder = cast(Embedder, opened.embedder)
        source = recorded["path"]
    else:
        from anlam.export.fast import resolve_weights

        weights = resolve_weights(model, precision.value if precision else "auto", device)
        embedder = Embedder.from_pretrained(weights.path, device=device)
        source = weights.source
    settings.model_name = settings.model_name or Path(source).name  # an int8 export reports its model's name
    if host not in LOOPBACK and not api_key:
        logger.warning("serving on %s without an API key: anyone who can reach this port can use it", host)
    calibration = None
    if settings.paraphrase and Path(str(embedder.path)) != Path(source):
        # an int8 export embeds within 0.01 of its model (checked when built): use the model's calibration
        from anlam.apps.paraphrase import stored_calibration
        from anlam.models.base import anlam_home

        calibration = stored_calibration(resolve_model_path(source), anlam_home() / "calibrations")
    if workers and workers > 1 and embedder.parallel_batches == 1:
        logger.warning("--workers %d: %s is a torch model, which runs one batch at a time", workers, source)
    run_server(create_app(embedder, settings, opened, calibration), host=host, port=port, access_log=access_log)
