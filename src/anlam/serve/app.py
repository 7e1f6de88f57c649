"""The FastAPI app: OpenAI-compatible embeddings, similarity, paraphrase and search over one model.

``create_app(embedder, settings, index=None)`` builds it; ``run_server`` serves it with uvicorn.
Everything that touches the model goes through one ``MicroBatcher`` (one model thread, one
bounded queue), so concurrent requests share forward passes and overload answers 503 instead
of piling up. The index follows ``anlam index add``/``delete`` run beside the server: a new
generation is loaded off the model thread and swapped in whole. Every error has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import socket
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from anlam.errors import AnlamError
from anlam.models.embedder import Embedder, first_unknown_id, normalise
from anlam.serve import schemas
from anlam.serve.batcher import MicroBatcher, QueueFull
from anlam.text import nfc

logger = logging.getLogger(__name__)

MAX_MATRIX_TEXTS = 256  # /v1/similarity with "texts" answers len(texts)**2 numbers
INLINE_TOKENIZE_CHARS = 20_000  # count tokens of bigger requests off the event loop
FOLLOW_SECONDS = 1.0  # how often the server looks for a new index generation (one stat of its manifest)
ERROR_TYPES = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error",
               422: "invalid_request_error", 503: "server_error"}


@dataclass
class ServeSettings:
    """Limits and switches of one server; the ``anlam serve`` options map onto these one to one.

    Attributes:
        max_batch_size: texts per merged batch (one ``encode`` call).
        max_batch_tokens: bound on ``texts * longest text`` (in tokens) of a merged batch.
        encode_batch_size: texts per forward pass inside a merged batch; ``encode`` sorts the
            batch by length first, so small passes pad little (16 is best on CPU; a GPU wants more).
        max_wait_ms: how long a batch waits for more requests once the server is idle.
        queue_size: requests waiting at most; beyond it the server answers 503 with Retry-After.
        max_inputs: texts (or pairs, or queries) per request; beyond it 413.
        max_chars: characters per text; beyond it 413.
        batching: ``False`` gives every request its own forward pass.
        api_key: if set, /v1/* requires ``Authorization: Bearer <api_key>``.
        cors_origins: origins browsers may call from; none by default (CORS off).
        model_name: the id /v1/models reports; default the model folder's name.
        truncate: embed the first ``max_tokens`` tokens of a longer input instead of answering 413
            (a request's ``truncate`` overrides it), as Text Embeddings Inference's ``--auto-truncate``.
        paraphrase: serve /v1/paraphrase; its calibration is read or fitted at start-up.
    """

    max_batch_size: int = 64
    max_batch_tokens: int = 16384
    encode_batch_size: int = 16
    max_wait_ms: float = 5.0
    queue_size: int = 256
    max_inputs: int = 2048
    max_chars: int = 8192
    batching: bool = True
    api_key: str | None = None
    cors_origins: Sequence[str] = ()
    model_name: str | None = None
    truncate: bool = False
    paraphrase: bool = True

    def check(self) -> None:
        """Raises ``AnlamError`` naming the first setting out of range."""
        names = ("max_batch_size", "max_batch_tokens", "encode_batch_size", "queue_size", "max_inputs", "max_chars")
        for name in names:
            if getattr(self, name) < 1:
                raise AnlamError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise AnlamError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}")
        if self.api_key is not None and not self.api_key.strip():
            raise AnlamError("--api-key is empty")

    @property
    def max_body_bytes(self) -> int:
        """The largest request body that can be within the text limits (6 bytes = one JSON-escaped character)."""
        return self.max_inputs * (6 * self.max_chars + 16) + 65536


class APIError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class TokenCounter:
    """Tokens per text, special tokens included, from a private copy of the model's tokenizer.

    A copy, because a Hugging Face fast tokenizer raises "Already borrowed" when two threads use
    it while one changes its truncation settings, as ``encode`` does on the model thread. Copying
    a 250k-piece vocabulary takes seconds, so apps over the same tokenizer share one counter.
    """

    @classmethod
    @lru_cache(maxsize=4)
    def of(cls, tokenizer) -> TokenCounter:
        return cls(tokenizer)

    def __init__(self, tokenizer) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch_fast(list(texts))]


class Service:
    """What the routes share: the model, its batcher, the optional index and paraphrase detector."""

    def __init__(self, embedder: Embedder, settings: ServeSettings, index=None, calibration=None) -> None:
        self.embedder = embedder
        self.settings = settings
        self.index = index
        self.model_id = settings.model_name or Path(str(embedder.path)).name
        self.created = int(time.time())
        self.count_tokens = TokenCounter.of(embedder.tokenizer)
        self.batcher = MicroBatcher(
            partial(embedder.encode, prompt="", batch_size=settings.encode_batch_size),  # texts come prompted
            max_batch_size=settings.max_batch_size, max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms, queue_size=settings.queue_size, batching=settings.batching,
            workers=embedder.parallel_batches)
        self._calibration = calibration
        self._no_calibration = "start-up has not calibrated yet"  # why /v1/paraphrase answers 503
        # read now, before the model thread uses the tokenizer (it is not safe across threads)
        self.takes_ids = embedder.takes_token_ids
        self.vocab_size = embedder.vocab_size

    async def embed(self, texts: Sequence[str], input_type: str | None, truncate: bool | None,
                    names: Sequence[str]) -> tuple[np.ndarray, int]:
        """Unit vectors of ``texts`` with the prompt of ``input_type``, and the tokens embedded.

        ``names`` are the request fields of the texts (``input[3]``), for errors.
        """
        prompted = self.prompted(texts, input_type)
        counts = self.fit(await self.tokens(prompted), names, truncate)
        vectors = await self._queued(self.batcher.embed(prompted, counts))
        return vectors, sum(counts)

    async def embed_ids(self, ids: list[list[int]], names: list[str], input_type: str | None,
                        truncate: bool | None) -> tuple[np.ndarray, int]:
        """Unit vectors of texts given as the model's token ids (``Embedder.encode_ids``), and the tokens embedded."""
        if not self.takes_ids:
            raise APIError(422, "this model reads text only: send input as text, not token ids", "input",
                           "token_ids_unsupported")
        self._check_count(len(ids), "input", self.settings.max_inputs, "per request (--max-inputs)")
        for row, name in zip(ids, names):
            if not row:
                raise APIError(422, f"{name} is empty", name, "empty_input")
        bad = first_unknown_id(ids, self.vocab_size)
        if bad is not None:
            where = f"{names[bad[0]]}[{bad[1]}]"
            raise APIError(422, f"{where}: token id {ids[bad[0]][bad[1]]} is not in the model's vocabulary "
                           f"(0 to {self.vocab_size - 1})", where, "invalid_token_id")
        rows = await self.call(partial(self.embedder.model_input_ids, ids, input_type))
        counts = self.fit([len(row) for row in rows], names, truncate)
        vectors = await self.call(partial(self.embedder.encode_ids, ids, input_type,
                                          batch_size=self.settings.encode_batch_size))
        return vectors, sum(counts)

    def fit(self, counts: Sequence[int], names: Sequence[str], truncate: bool | None) -> list[int]:
        """Token counts as embedded: an input over ``max_tokens`` is 413 unless truncation is on (TEI's rule).

        ``truncate`` is the request's; ``None`` means the server's ``--truncate``.
        """
        limit = self.embedder.max_tokens
        if not (self.settings.truncate if truncate is None else truncate):
            for n, name in zip(counts, names):
                if n > limit:
                    raise APIError(413, f"{name} has {n} tokens; the model reads at most {limit} (prompt and special "
                                   f'tokens included): shorten it, send "truncate": true to embed its first {limit} '
                                   "tokens, or start the server with --truncate", name, "context_length_exceeded")
        return [min(n, limit) for n in counts]

    def prompted(self, texts: Sequence[str], input_type: str | None) -> list[str]:
        """The texts as the model reads them: NFC, after the prompt's prefix."""
        prefix = self.embedder.prompt_text(input_type)
        return [prefix + nfc(t) for t in texts]

    async def tokens(self, prompted: list[str]) -> list[int]:
        """Token counts; big requests are tokenised off the event loop."""
        if sum(map(len, prompted)) <= INLINE_TOKENIZE_CHARS:
            return self.count_tokens(prompted)
        return await asyncio.to_thread(self.count_tokens, prompted)

    async def follow_index(self, every: float = FOLLOW_SECONDS) -> None:
        """Keep ``self.index`` on the index's newest generation, for as long as the server runs.

        ``Index.latest`` costs one ``stat`` while nothing changes; a new generation is loaded whole
        on a worker thread, then becomes ``self.index`` in one assignment. Searches already queued
        finish on the generation they started with, which is closed after them (in queue order).
        """
        failed = None
        while True:
            await asyncio.sleep(every)
            current = self.index
            try:
                fresh = await asyncio.to_thread(current.latest)
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded; retried at the next look
                if str(exc) != failed:
                    logger.error("%s: cannot load its new generation, still serving %s: %s",
                                 current.path, current.manifest["generation"], exc)
                failed = str(exc)
                continue
            failed = None
            if fresh is current:
                continue
            self.index = fresh
            logger.info("%s: now serving generation %s (%d passages)", fresh.path, fresh.manifest["generation"],
                        fresh.manifest["passages"])
            with suppress(APIError):  # a full queue: the old generation is closed when garbage-collected
                await self.call(current.close)

    async def call(self, fn) -> Any:
        """``fn()`` on the model thread, in queue order."""
        return await self._queued(self.batcher.call(fn))

    async def _queued(self, awaitable) -> Any:
        """Await a batcher submission; a full queue becomes 503 with Retry-After."""
        try:
            return await awaitable
        except QueueFull as exc:
            raise APIError(503, f"server busy: {exc} (--queue-size); retry shortly", code="queue_full",
                           headers={"Retry-After": "1"}) from None

    async def prepare_calibration(self) -> None:
        """At start-up: the model folder's ``anlam_calibration.json``, else the one cached under
        ``$ANLAM_HOME/calibrations`` for this model's checksum, else fitted on ML-TR dev now and
        cached there. The model folder is only read; a failure leaves /v1/paraphrase answering 503.
        """
        if self._calibration is not None:
            return
        from anlam.apps.paraphrase import Calibration, default_calibration
        from anlam.models.base import anlam_home

        def load():
            stored = Calibration.load(self.embedder.path) if Path(str(self.embedder.path)).is_dir() else None
            return stored or default_calibration(self.embedder, cache_dir=anlam_home() / "calibrations")

        try:
            self._calibration = await self.call(load)
        except AnlamError as exc:
            self._no_calibration = str(exc)
            logger.warning("/v1/paraphrase is unavailable: %s", exc)

    def calibration(self):
        """The calibration ``prepare_calibration`` found (never computed on a request)."""
        if not self.settings.paraphrase:
            raise APIError(404, "paraphrase detection is off: the server was started with --no-paraphrase",
                           code="paraphrase_disabled")
        if self._calibration is None:
            raise APIError(503, f"paraphrase detection is unavailable: {self._no_calibration}", code="no_calibration")
        return self._calibration

    def texts(self, items: str | list[str], param: str, limit: int | None = None,
              reason: str = "per request (--max-inputs)") -> list[str]:
        """``items`` as a list, checked against the request limits."""
        items = [items] if isinstance(items, str) else list(items)
        self._check_count(len(items), param, limit or self.settings.max_inputs, reason)
        for i, text in enumerate(items):
            self._check_text(text, f"{param}[{i}]")
        return items

    def pairs(self, pairs: list[tuple[str, str]], param: str) -> list[tuple[str, str]]:
        """``pairs``, checked against the request limits (each pair counts as one input)."""
        self._check_count(len(pairs), param, self.settings.max_inputs, "per request (--max-inputs)")
        for i, pair in enumerate(pairs):
            for j, text in enumerate(pair):
                self._check_text(text, f"{param}[{i}][{j}]")
        return pairs

    def _check_count(self, n: int, param: str, limit: int, reason: str) -> None:
        if n == 0:
            raise APIError(422, f"{param} is empty: give at least one text", param, "empty_input")
        if n > limit:
            raise APIError(413, f"{param} has {n} items; this server accepts at most {limit} {reason}",
                           param, "too_many_inputs")

    def _check_text(self, text: str, where: str) -> None:
        if not text.strip():
            raise APIError(422, f"{where} is empty", where, "empty_input")
        if len(text) > self.settings.max_chars:
            raise APIError(413, f"{where} has {len(text)} characters; this server accepts at most "
                           f"{self.settings.max_chars} per text (--max-chars)", where, "input_too_long")


def create_app(embedder: Embedder, settings: ServeSettings | None = None, index=None, calibration=None) -> FastAPI:
    """The HTTP API over ``embedder`` (an ``anlam.models.Embedder``).

    Args:
        settings: limits and switches (defaults: ``ServeSettings()``).
        index: an ``anlam.search.Index`` searched by ``/v1/search``; without it that route answers 404.
            The server follows it to the generations that writes elsewhere commit (``Index.latest``).
        calibration: an ``anlam.apps.Calibration`` for ``/v1/paraphrase``; by default found or
            fitted at start-up (``Service.prepare_calibration``).

    Raises:
        AnlamError: a setting out of range.
    """
    settings = settings or ServeSettings()
    settings.check()
    service = Service(embedder, settings, index, calibration)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.batcher.start()
        if settings.paraphrase:
            await service.prepare_calibration()
        follower = asyncio.create_task(service.follow_index(), name="anlam-index") if index is not None else None
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            await service.batcher.stop()

    app = FastAPI(title="anlam", version=_version(), lifespan=lifespan,
                  description="Turkish technical-text embeddings: OpenAI-compatible `/v1/embeddings`, "
                              "similarity, paraphrase detection and search.")
    app.state.service = service
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    guard = [Depends(_require_key(settings.api_key))] if settings.api_key else []
    app.include_router(_routes(service), prefix="/v1", dependencies=guard,
                       responses={code: {"model": schemas.ErrorResponse} for code in (401, 413, 422, 503)})

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, Any]:
        """Liveness and load: model, queue, batches so far (no API key needed)."""
        batcher = service.batcher
        return {"status": "ok", "model": service.model_id, "dim": embedder.dim, "max_tokens": embedder.max_tokens,
                "batching": settings.batching, "queued": batcher.queued, "queue_size": settings.queue_size,
                "batches": batcher.batches, "encoded": batcher.encoded,
                "index": None if service.index is None else str(service.index.path),
                "generation": None if service.index is None else service.index.manifest["generation"]}

    return app


def _routes(service: Service) -> APIRouter:
    router = APIRouter()
    embedder, settings = service.embedder, service.settings

    @router.post("/embeddings", response_model=schemas.EmbeddingResponse, tags=["embeddings"])
    async def embeddings(request: schemas.EmbeddingRequest) -> Response:
        """Embed a text or a list of texts, each as text or as the model's token ids (OpenAI's embeddings API)."""
        dim = request.dimensions
        if dim is not None and not 1 <= dim <= embedder.dim:
            raise APIError(422, f"dimensions must be between 1 and {embedder.dim}, got {dim}", "dimensions",
                           "invalid_dimensions")
        items = request.input
        if isinstance(items, list) and items and not isinstance(items[0], str):  # token ids
            nested = isinstance(items[0], list)
            ids = cast(list[list[int]], items if nested else [items])
            names = [f"input[{i}]" for i in range(len(ids))] if nested else ["input"]
            vectors, tokens = await service.embed_ids(ids, names, request.input_type, request.truncate)
        else:
            texts = service.texts(cast(str | list[str], items), "input")
            vectors, tokens = await service.embed(texts, request.input_type, request.truncate,
                                                  [f"input[{i}]" for i in range(len(texts))])
        if dim is not None and dim < vectors.shape[1]:
            vectors = normalise(vectors[:, :dim])
        if request.encoding_format == "base64":
            encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            encoded = list(vectors)
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
        return _json({"object": "list", "data": data, "model": service.model_id, "usage": _usage(tokens)})

    @router.post("/similarity", response_model=schemas.SimilarityResponse, tags=["embeddings"])
    async def similarity(request: schemas.SimilarityRequest) -> Response:
        """Cosine similarity: every pair of ``texts`` (a matrix), or each of ``pairs`` (a list)."""
        if (request.texts is None) == (request.pairs is None):
            raise APIError(422, "give either texts (for a matrix) or pairs (for one score per pair)", "texts")
        body: dict[str, Any] = {"object": "similarity", "model": service.model_id}
        if request.texts is not None:
            limit = min(MAX_MATRIX_TEXTS, settings.max_inputs)
            texts = service.texts(request.texts, "texts", limit, "in a matrix (send pairs for more)")
            vectors, tokens = await service.embed(texts, request.input_type, request.truncate,
                                                  [f"texts[{i}]" for i in range(len(texts))])
            body["matrix"] = np.clip(vectors @ vectors.T, -1.0, 1.0)
        elif request.pairs is not None:
            pairs = service.pairs(request.pairs, "pairs")
            unique, names = _unique_texts(pairs)
            vectors, tokens = await service.embed(unique, request.input_type, request.truncate, names)
            row = {t: i for i, t in enumerate(unique)}
            a, b = vectors[[row[p[0]] for p in pairs]], vectors[[row[p[1]] for p in pairs]]
            body["scores"] = np.clip((a * b).sum(axis=1), -1.0, 1.0)
        return _json({**body, "usage": _usage(tokens)})

    @router.post("/paraphrase", response_model=schemas.ParaphraseResponse, tags=["apps"])
    async def paraphrase(request: schemas.ParaphraseRequest) -> Response:
        """Is each pair a paraphrase? A calibrated probability and the decision at the threshold."""
        from anlam.apps import ParaphraseDetector

        calibration = service.calibration()
        pairs = service.pairs(request.pairs, "pairs")
        if request.threshold is not None:
            calibration = calibration.with_threshold(request.threshold)
        unique, names = _unique_texts(pairs)
        counts = await service.tokens(service.prompted(unique, calibration.prompt))
        tokens = sum(service.fit(counts, names, request.truncate))
        detector = ParaphraseDetector(embedder, calibration)
        results = await service.call(partial(detector.predict, pairs))
        data = [{"index": i, "probability": round(r.probability, 4), "paraphrase": r.paraphrase,
                 "cosine": round(r.cosine, 4)} for i, r in enumerate(results)]
        return _json({"object": "list", "model": service.model_id, "threshold": calibration.threshold,
                      "data": data, "usage": _usage(tokens)})

    @router.post("/search", response_model=schemas.SearchResponse, tags=["search"])
    async def search(request: schemas.SearchRequest) -> Response:
        """The ``k`` best passages of the loaded index for each query (dense, BM25 or hybrid)."""
        if service.index is None:
            raise APIError(404, "no index is loaded: start the server with --index DIR", code="no_index")
        queries = service.texts(request.query, "query")
        where = {key: [v] if isinstance(v, str) else v for key, v in (request.filter or {}).items()}
        run = partial(service.index.search_many, queries, k=request.k, mode=request.mode, filter=where or None)
        results = await service.call(run)
        data = [{"index": i, "query": q, "hits": [h.to_dict() for h in hits]}
                for i, (q, hits) in enumerate(zip(queries, results))]
        return _json({"object": "list", "data": data})

    @router.get("/models", response_model=schemas.ModelList, tags=["meta"])
    async def models() -> dict[str, Any]:
        """The one model this server serves."""
        return {"object": "list", "data": [_model_card(service)]}

    @router.get("/models/{model_id:path}", response_model=schemas.Model, tags=["meta"])
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != service.model_id:
            raise APIError(404, f"model {model_id!r} is not served here; this server serves {service.model_id!r}",
                           "model", "model_not_found")
        return _model_card(service)

    return router


def _unique_texts(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The distinct texts of ``pairs`` (each embedded once) and where each first appears (``pairs[2][1]``)."""
    first: dict[str, str] = {}
    for i, pair in enumerate(pairs):
        for j, text in enumerate(pair):
            first.setdefault(text, f"pairs[{i}][{j}]")
    return list(first), list(first.values())


def _model_card(service: Service) -> dict[str, Any]:
    return {"id": service.model_id, "object": "model", "created": service.created, "owned_by": "anlam"}


def _require_key(api_key: str):
    expected = api_key.encode("utf-8")

    async def check(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"), expected):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    return check


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(AnlamError)
    async def anlam_error(request: Request, exc: AnlamError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = loc[0] + "".join(f"[{p}]" for p in loc[1:]) if loc else None
        return error_response(422, f"{param}: {first['msg']}" if param else str(first["msg"]), param, "invalid_value")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", code="internal_error")


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes, before they are read into memory.

    A declared ``Content-Length`` is checked up front (the HTTP server delivers no more than it
    declares); a chunked body is read here, up to the limit, and handed on whole.
    """

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() or b"chunked" not in headers.get(b"transfer-encoding", b""):
            if length.isdigit() and int(length) > self.limit:
                return await self._refuse(scope, receive, send)
            return await self.app(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(scope, receive, send)
        whole = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay():
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        response = error_response(413, f"request body over {self.limit} bytes (the most that --max-inputs and "
                                  "--max-chars allow)", code="body_too_large")
        await response(scope, receive, send)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, made here so a busy port is one clear error.

    Its protocol is set to TCP explicitly (``socket.create_server`` leaves it 0): asyncio turns
    Nagle's algorithm off only on connections whose socket says IPPROTO_TCP, and with it on, a
    response written as headers then body waits for the client's delayed ACK, about 40 ms on every
    keep-alive request (measured: 60 ms per one-query request where the model takes 8).

    Raises:
        AnlamError: the address cannot be bound (port in use, unknown host).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise AnlamError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise AnlamError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False) -> None:
    """Serve ``app`` with uvicorn until interrupted.

    Raises:
        AnlamError: the address cannot be bound (port in use, unknown host).
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level="info",
                            timeout_graceful_shutdown=10)
    sock = listening_socket(host, port)
    where = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info("anlam serving on http://%s:%d/v1 (API docs: http://%s:%d/docs)",
                                            where, port, where, port)
    uvicorn.Server(config).run(sockets=[sock])


def _json(body: dict[str, Any]) -> Response:
    """JSON with numpy arrays written by orjson (float32 in its shortest form, as OpenAI sends it)."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": int(tokens), "total_tokens": int(tokens)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anlam")
    except PackageNotFoundError:
        return "0"
