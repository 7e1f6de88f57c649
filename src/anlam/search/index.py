"""``Index``: a persistent semantic-search index over Turkish documents (build, add, delete, search).

An index is a folder::

    INDEX/manifest.json      model, dimension, prompts, normalisation, store, current generation
    INDEX/g000003/           the current generation: passages.sqlite + vectors.faiss (embedded
                             store) and bm25/ (the lexical side)

Every write builds the next generation in a new folder and then replaces ``manifest.json``
(one atomic rename), so a process killed at any point leaves the previous index complete and
loadable; the next write removes what the killed one left. A write keeps the generation it
replaced (readers that loaded it go on with it; ``Index.latest`` moves a long-lived reader such
as the server to the new one) and removes older ones. A reader loads a generation whole (vectors,
BM25, letter table; SQLite held open), so it never goes back to a folder a write may remove. The
manifest also records a probe embedding of a fixed sentence: an index refuses to be searched or
extended with a model whose embeddings differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from anlam.data.readers import Document, read_documents
from anlam.errors import AnlamError
from anlam.io import SEARCH_INDEX, check_output_folder, read_json_file, write_json
from anlam.search.chunking import Chunker, Passage
from anlam.search.hybrid import CANDIDATES, DENSE_WEIGHT, Fusion, fuse_pairs
from anlam.search.letters import Letters
from anlam.search.lexical import Lexical, query_words, terms_from_tokens
from anlam.search.store import DEFAULT_ANN_THRESHOLD, DEFAULT_EF_SEARCH, EmbeddedStore, Filter, VectorStore
from anlam.text import clean, tokens, tr_lower, tr_upper

if TYPE_CHECKING:
    from anlam.export.fast import Weights
    from anlam.models import EmbedderLike

logger = logging.getLogger(__name__)

PathLike = Path | str
Mode = Literal["dense", "bm25", "hybrid"]
FilterArg = Filter | dict[str, str] | Sequence[str] | None  # {"k": ["v"]}, {"k": "v"} or ["k=v"]
MODES = ("dense", "bm25", "hybrid")
FORMAT = "anlam-index/1"
MANIFEST = "manifest.json"
PROBE = "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni verilerde başarısız olmasıdır."
PROBE_MIN_COSINE = 0.999
NORMALISATION = {
    "text": "anlam.text.clean: NFC, stray combining dots dropped, typographic apostrophes to ', white space collapsed",
    "dense_query": "lower-cased with Turkish rules if typed all in capitals; words typed without Turkish letters "
                   "restored from the index's own words (asiri -> aşırı); title case lower-cased but for acronyms",
    "vectors": "unit length; score = inner product = cosine",
    "bm25": "anlam.text.tokens, ASCII-folded: Turkish Snowball stems ('~') and 4- and 6-letter prefixes ('#4', '#6')",
}
_GENERATION = re.compile(r"^g(\d{6})$")
_WORD = re.compile(r"\w+")


@dataclass
class Hit:
    """One ranked passage; ``id`` is its document's id, ``dense``/``bm25`` each side's score if it ranked it."""

    id: str
    passage: int
    score: float
    text: str
    title: str
    heading: str
    position: int
    source: str
    metadata: dict[str, Any]
    dense: float | None = None
    bm25: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_filters(items: Iterable[str]) -> Filter:
    """``["konu=optimizasyon", "dil=tr"]`` -> ``{"konu": ["optimizasyon"], "dil": ["tr"]}``.

    A key given twice accepts either value; different keys must all match.
    """
    where: Filter = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"\w[\w.-]*", key):
            raise AnlamError(f"--filter {item!r}: expected key=value (key of letters, digits, '_', '.', '-')")
        where.setdefault(key, []).append(value)
    return where


def _where(filter: FilterArg) -> Filter | None:
    """Filters given as ``["key=value"]``, ``{"key": "value"}`` or ``{"key": ["v1", "v2"]}``."""
    if not filter:
        return None
    if not isinstance(filter, dict):
        return parse_filters(filter)
    return {str(key): [value] if isinstance(value, str) else [str(v) for v in value] for key, value in filter.items()}


def dense_query(text: str, letters: Letters | None = None) -> str:
    """The query as the model sees it: cleaned, lower-cased (Turkish rules) if typed all in capitals,
    with Turkish letters restored from the index's words where they were left out, and a query in
    title case ("Öğrenme Oranı Seçimi", as headings are written) lower-cased but for its acronyms.

    Title case costs the models about 0.03 MRR@10 on d2l-tr dev headings against the same
    headings lower-cased (benchmarks/search.py); no other dev query set has title-case queries.
    """
    text = clean(text)
    capitals = text == tr_upper(text) and text != tr_lower(text)
    if capitals:
        text = tr_lower(text)
    if letters is not None:
        text = letters.restore(text, all_words=capitals)
    long = [w for w in _WORD.findall(text) if len(w) >= 4 and w[0].isalpha()]
    if long and all(w[0].isupper() for w in long):  # every word of four letters or more capitalised
        text = _WORD.sub(lambda m: tr_lower(m[0]) if m[0][1:] == tr_lower(m[0][1:]) else m[0], text)
    return text


class Index:
    """A search index folder: passages with vectors (dense) and BM25 terms (lexical).

    Attributes:
        path: the index folder.
        manifest: the parsed ``manifest.json`` of the generation this object reads.
        store: the ``VectorStore`` holding passages and vectors.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], store: VectorStore, embedder: EmbedderLike | None = None,
                 device: str | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.store = store
        self._embedder = embedder
        self._device = device
        self._checked = False
        self._lexical: Lexical | None = None  # loaded with the generation, never later
        self._letters: Letters | None = None
        self._stamp: tuple[int, int, int] | None = None  # the manifest file this object read (see ``latest``)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        documents: Iterable[Document | PathLike],
        out: PathLike,
        model: EmbedderLike | PathLike | None = None,
        *,
        store: str = "embedded",
        max_words: int = 120,
        overlap: int = 1,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        ef_search: int = DEFAULT_EF_SEARCH,
        strict: bool = False,
        batch_size: int = 32,
        device: str | None = None,
        overwrite: bool = False,
        precision: str = "fp32",
    ) -> Index:
        """Build an index of ``documents`` (``Document`` objects and/or files and folders) at ``out``.

        Args:
            model: a model folder, a loaded ``Embedder`` (or any ``EmbedderLike``), or ``None`` for the default
                built-in model.
            precision: the model's own weights ("fp32"), its int8 export ("int8", built on first use)
                or int8 where it passed its quality check ("auto"); see ``anlam.export.fast``. The
                manifest records the weights, and every later search and add uses the same ones.
            store: "embedded" (FAISS + SQLite in the folder), "milvus:PATH.db" (Milvus Lite) or
                "http://host:19530" (a Milvus server).
            max_words, overlap: passage size in words and sentences shared by neighbours.
            ann_threshold: from this many passages on, the embedded store is approximate (HNSW).
            ef_search: HNSW candidate list per query once approximate (more = slower, better recall).
            strict: invalid UTF-8 is an error instead of a skipped document.
            overwrite: rebuild an index already at ``out`` (in place: readers keep the old
                generation until the new one is committed); see ``anlam.io.check_output_folder``.

        Raises:
            AnlamError: no documents, an unreadable file, an ``out`` that may not be written.
        """
        out = Path(out)
        documents = [documents] if isinstance(documents, (str, Path, Document)) else list(documents)
        check_output_folder(out, SEARCH_INDEX, overwrite, [*documents, model])
        if ann_threshold < 1 or ef_search < 1:
            raise AnlamError("ann_threshold and ef_search must be positive")
        Chunker(max_words, overlap)  # checks the settings before any work
        docs = _documents(documents, strict)
        if not docs:
            raise AnlamError("no documents with text to index")
        embedder, weights = _load_weights(model, device, precision)
        manifest = {
            "format": FORMAT,
            "created": _now(),
            "model": {
                "path": _model_path(weights.source),
                "default": model is None,
                **weights.record(),
                "dim": int(embedder.dim),
                "prompts": {name: embedder.prompt_text(name) for name in ("query", "passage")},
                "probe": [round(float(x), 6) for x in embedder.encode([PROBE], prompt_name="query")[0]],
            },
            "normalisation": NORMALISATION,
            "chunking": {"max_words": max_words, "overlap": overlap},
            "generation": None,
            "next_id": 0,
            "documents": 0,
            "passages": 0,
        }
        existed = out.exists()
        created = not existed or not any(out.iterdir())  # an empty folder is left empty again
        new_store = _new_store(store, embedder.dim, ann_threshold, ef_search)
        index = cls(out, manifest, new_store, embedder)
        index._checked = True
        try:
            index._write(docs, (), batch_size=batch_size, fresh=True)
        except BaseException:
            if index.manifest["generation"] is None:  # never committed: leave nothing behind
                new_store.drop()
                if created:
                    shutil.rmtree(out, ignore_errors=True)
                    if existed:
                        out.mkdir()
            raise
        return index

    @classmethod
    def load(cls, path: PathLike, model: EmbedderLike | PathLike | None = None, device: str | None = None) -> Index:
        """Open the index at ``path``; ``model`` (folder or ``Embedder``) overrides the recorded one.

        The current generation (vectors, BM25, letter table) is loaded now, whole. The model is
        loaded (and checked against the index) on the first dense search or write, so BM25-only
        searches never load it.

        Raises:
            AnlamError: no index there, or an index in another format.
        """
        path = Path(path)
        recorded = _read_manifest(path)["model"]  # a clear error before the model loads
        embedder = None if model is None else _load_embedder(model, device, recorded.get("precision", "fp32"))
        return cls._open(path, embedder, device)

    @classmethod
    def _open(cls, path: Path, embedder: EmbedderLike | None, device: str | None) -> Index:
        stamp = _stamp(path)  # taken first: a commit after it shows as a change to ``latest``
        manifest = _read_manifest(path)
        index = cls(path, manifest, _open_store(path, manifest), embedder, device)
        try:
            index._lexical, index._letters = _open_sides(path, manifest)
        except BaseException:
            index.close()
            raise
        index._stamp = stamp
        return index

    def latest(self) -> Index:
        """This index, or the index as committed since it was loaded (by ``add``/``delete`` anywhere).

        Costs one ``stat`` of the manifest while nothing changed, so a long-lived reader (the
        server) can ask often. A new generation comes back as a new ``Index``, loaded whole and
        sharing this one's model; ``self`` stays searchable (its generation stays on disk until
        the write after next, and what it holds is loaded or open already).
        """
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return self
        if _read_manifest(self.path)["generation"] == self.manifest["generation"]:
            self._stamp = stamp
            return self
        fresh = Index._open(self.path, self._embedder, self._device)
        fresh._checked = self._checked and fresh.manifest["model"] == self.manifest["model"]
        return fresh

    # -- the model -------------------------------------------------------------------------

    @property
    def embedder(self) -> EmbedderLike:
        """The model, loaded on first use and refused if its embeddings differ from the index's."""
        if self._embedder is None:
            recorded = self.manifest["model"]
            path = None if recorded.get("default") else recorded["path"]
            if path is not None and Path(path).is_absolute() and not Path(path).exists():
                raise AnlamError(f"{self.path}: the index's model {path} is gone; pass --model with the same model")
            self._embedder = _load_embedder(path, self._device, recorded.get("precision", "fp32"))
        if not self._checked:
            self._check_model(self._embedder)
            self._checked = True
        return self._embedder

    def _check_model(self, embedder: EmbedderLike) -> None:
        recorded = self.manifest["model"]
        probe = np.asarray(recorded["probe"], dtype=np.float32)
        same = int(embedder.dim) == recorded["dim"] and all(
            embedder.prompt_text(name) == text for name, text in recorded["prompts"].items())
        if same:
            vector = embedder.encode([PROBE], prompt_name="query")[0]
            same = float(vector @ probe / max(np.linalg.norm(probe), 1e-12)) >= PROBE_MIN_COSINE
        if not same:
            raise AnlamError(
                f"{self.path}: built with model {recorded['path']} ({recorded['dim']}-d), but {embedder.path} "
                "gives different embeddings; use the index's model (--model) or rebuild the index with this one")

    @property
    def lexical(self) -> Lexical:
        """The BM25 side of this generation."""
        assert self._lexical is not None, "loaded with the generation"
        return self._lexical

    @property
    def letters(self) -> Letters:
        """The word counts of this generation (for ``dense_query``)."""
        assert self._letters is not None, "loaded with the generation"
        return self._letters

    # -- writing ---------------------------------------------------------------------------

    def add(self, documents: Iterable[Document | PathLike], strict: bool = False,
            batch_size: int = 32) -> dict[str, int]:
        """Add documents (files, folders or ``Document`` objects); a document whose id exists replaces it.

        Returns:
            ``{"documents": added or replaced, "replaced": of which replaced, "passages": new passages}``.
        """
        docs = _documents(documents, strict)
        if not docs:
            raise AnlamError("no documents with text to add")
        return self._write(docs, (), batch_size=batch_size)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents (with all their passages) by id; returns how many were deleted.

        Raises:
            AnlamError: an id that is not in the index (nothing is deleted then).
        """
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not ids:
            raise AnlamError("no document ids to delete")
        return self._write([], ids)["deleted"]

    def _write(self, docs: list[Document], delete: Sequence[str], batch_size: int = 32,
               fresh: bool = False) -> dict[str, int]:
        """Chunk and embed ``docs`` (outside the lock), then commit the next generation under it."""
        chunker = Chunker(**self.manifest["chunking"])
        passages: list[Passage] = []
        for doc in docs:
            pieces = chunker.split(doc)
            if not pieces:
                logger.warning("%s: document %r has no text outside headings, skipped", doc.source, doc.id)
            passages.extend(pieces)
        if docs and not passages:
            raise AnlamError("the documents contain no text to index")
        texts = [p.context for p in passages]
        embedder = self.embedder if passages else None
        vectors = (embedder.encode(texts, prompt_name="passage", batch_size=batch_size, show_progress=len(texts) > 256)
                   if embedder is not None else np.zeros((0, self.manifest["model"]["dim"]), dtype=np.float32))
        words: Counter[str] = Counter()
        terms = []
        for text in texts:
            split = tokens(text)
            words.update(split)
            terms.append(" ".join(terms_from_tokens(split)))
        self.path.mkdir(parents=True, exist_ok=True)
        with _lock(self.path):
            return self._commit(passages, vectors, words, terms, delete, fresh)

    def _commit(self, passages: list[Passage], vectors: np.ndarray, words: Counter[str], terms: list[str],
                delete: Sequence[str], fresh: bool) -> dict[str, int]:
        """Write the next generation and move the manifest to it (the caller holds the lock)."""
        old_store = None
        on_disk = _read_manifest(self.path) if (self.path / MANIFEST).exists() else None
        if fresh:
            old_store = _open_store(self.path, on_disk) if on_disk and on_disk["store"]["kind"] != "embedded" else None
        elif on_disk is None:
            raise AnlamError(f"{self.path}: {MANIFEST} was removed while the index was open; build it again")
        elif on_disk["generation"] != self.manifest["generation"]:  # another process committed since we loaded
            self.store.close()
            self.manifest, self.store = on_disk, _open_store(self.path, on_disk)
            self._lexical, self._letters = _open_sides(self.path, on_disk)
        _remove_stale(self.path, on_disk["generation"] if on_disk else None)
        doc_ids = list(dict.fromkeys(p.doc_id for p in passages))
        replaced = self.store.existing(doc_ids) if doc_ids and not fresh else set()
        found = self.store.existing(delete) if delete else set()
        missing = [i for i in delete if i not in found]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise AnlamError(f"{self.path}: no document with id {shown}; nothing deleted")
        start = self.manifest["next_id"] if not fresh else 0
        ids = np.arange(start, start + len(passages), dtype=np.int64)
        generation = _next_generation(on_disk["generation"] if on_disk else None)
        folder = self.path / generation
        folder.mkdir()
        store = self.store.commit(folder, passages, terms, vectors, ids, [*replaced, *delete])
        lexical = Lexical.build(store.terms())
        lexical.save(folder / "bm25")
        letters = (Letters() if fresh else self.letters).add(words)
        letters.save(folder)
        documents = (0 if fresh else self.manifest["documents"]) + len(doc_ids) - len(replaced) - len(delete)
        manifest = {**self.manifest, "generation": generation, "next_id": start + len(passages),
                    "documents": documents, "passages": store.count(), "store": store.config(), "updated": _now()}
        write_json(self.path / MANIFEST, manifest)  # the commit point
        if store is not self.store:
            self.store.close()
        self.store, self.manifest, self._lexical, self._letters = store, manifest, lexical, letters
        _remove_stale(self.path, generation)
        if old_store is not None and old_store.config() != store.config():
            old_store.drop()
        if replaced:
            logger.info("replaced %d document(s) already in the index", len(replaced))
        return {"documents": len(doc_ids), "replaced": len(replaced), "passages": len(passages), "deleted": len(delete)}

    # -- searching -------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filter: FilterArg = None,
               dense_weight: float = DENSE_WEIGHT) -> list[Hit]:
        """The ``k`` best passages for ``query``; see ``search_many``."""
        return self.search_many([query], k=k, mode=mode, filter=filter, dense_weight=dense_weight)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: Mode = "hybrid", filter: FilterArg = None,
                    dense_weight: float = DENSE_WEIGHT) -> list[list[Hit]]:
        """The ``k`` best passages for each query (queries are embedded in one batch).

        Args:
            mode: "dense" (embeddings), "bm25" (lexical) or "hybrid" (both, fused by ``anlam.search.hybrid``).
            filter: ``{"key": ["value", ...]}`` or ``["key=value", ...]`` on document metadata; ``id``
                matches the document id.
            dense_weight: weight of the dense side against BM25's 1 in hybrid fusion, for a query of
                ``hybrid.PIVOT`` words (longer queries shift weight to BM25; see ``hybrid.Fusion``).

        Raises:
            AnlamError: an empty query, an unknown mode, ``k`` < 1, a bad filter, or a model that
                differs from the index's.
        """
        if mode not in MODES:
            raise AnlamError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if k < 1:
            raise AnlamError(f"k must be at least 1, got {k}")
        for number, query in enumerate(queries, start=1):
            if not isinstance(query, str) or not query.strip():
                raise AnlamError(f"query {number}: empty query")
        depth = max(k, CANDIDATES) if mode == "hybrid" else k
        dense, lexical = self.candidates(queries, depth, mode, filter)
        fusion = Fusion(dense_weight=dense_weight, depth=depth)
        ranked = []
        for query, d, b in zip(queries, dense, lexical):
            if mode == "dense":
                ranked.append(d[:k])
            elif mode == "bm25":
                ranked.append(b[:k])
            else:
                ranked.append(fuse_pairs(d, b, fusion, query_words(query))[:k])
        passages = self.store.get(sorted({pid for r in ranked for pid, _ in r}))
        out = []
        for ranking, d, b in zip(ranked, dense, lexical):
            d_scores, b_scores = dict(d), dict(b)
            out.append([_hit(passages[pid], pid, score, d_scores.get(pid), b_scores.get(pid))
                        for pid, score in ranking if pid in passages])
        return out

    def candidates(self, queries: Sequence[str], depth: int, mode: Mode = "hybrid", filter: FilterArg = None,
                   ) -> tuple[list[list[tuple[int, float]]], list[list[tuple[int, float]]]]:
        """Each side's ``depth`` best ``(passage id, score)`` pairs per query, before fusion.

        Returns ``(dense, bm25)``; the side ``mode`` leaves out gets empty lists.
        """
        where = _where(filter)
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        lexical: list[list[tuple[int, float]]] = [[] for _ in queries]
        if mode != "bm25" and queries:
            vectors = self.embedder.encode([dense_query(q, self.letters) for q in queries], prompt_name="query")
            dense = self.store.search(vectors, depth, where)
        if mode != "dense":
            allowed = self.store.filter_ids(where) if where else None
            for i, query in enumerate(queries):
                ids, scores = self.lexical.search(query, depth, allowed)
                lexical[i] = list(zip(ids.tolist(), scores.tolist()))
        return dense, lexical

    # -- facts -----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What ``anlam index info`` shows: sizes, model, store and vector index kind, settings."""
        m = self.manifest
        return {
            "path": str(self.path),
            "documents": m["documents"],
            "passages": m["passages"],
            "model": m["model"]["path"],
            "precision": m["model"].get("precision", "fp32"),
            "dim": m["model"]["dim"],
            "prompts": m["model"]["prompts"],
            **self.store.info(),
            "chunking": m["chunking"],
            "normalisation": m["normalisation"],
            "generation": m["generation"],
            "created": m["created"],
            "updated": m.get("updated", m["created"]),
        }

    def close(self) -> None:
        self.store.close()


def _hit(p: Passage, pid: int, score: float, dense: float | None, bm25: float | None) -> Hit:
    return Hit(p.doc_id, pid, round(float(score), 6), p.text, p.title, p.heading, p.position, p.source, p.metadata,
               None if dense is None else round(dense, 6), None if bm25 is None else round(bm25, 6))


def _documents(items: Iterable[Document | PathLike] | Document | PathLike, strict: bool) -> list[Document]:
    items = [items] if isinstance(items, (str, Path, Document)) else list(items)
    docs = [d for d in items if isinstance(d, Document)]
    paths = [p for p in items if not isinstance(p, Document)]
    docs += read_documents(paths, strict) if paths else []
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise AnlamError(f"{doc.source or '<documents>'}: duplicate document id {doc.id!r}")
        seen.add(doc.id)
    return [d for d in docs if d.text.strip()]


def _model_path(path: str) -> str:
    """An existing folder as an absolute path (so the index works from any directory); a hub id as is."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def _load_embedder(model: EmbedderLike | PathLike | None, device: str | None, precision: str = "fp32") -> EmbedderLike:
    return _load_weights(model, device, precision)[0]


def _load_weights(model: EmbedderLike | PathLike | None, device: str | None,
                  precision: str) -> tuple[EmbedderLike, Weights]:
    """The embedder to use and which weights it runs (``anlam.export.fast.Weights``)."""
    from anlam.export.fast import resolve_weights, weights_of

    if model is not None and not isinstance(model, (str, Path)):
        return model, weights_of(model)  # an Embedder or another EmbedderLike
    from anlam.models import Embedder

    weights = resolve_weights(model, precision, device)
    return Embedder.from_pretrained(weights.path, device=device), weights


def _new_store(spec: str, dim: int, ann_threshold: int, ef_search: int) -> VectorStore:
    if spec == "embedded":
        return EmbeddedStore.create(dim, ann_threshold, ef_search)
    from anlam.search.milvus import MilvusStore, parse_uri

    return MilvusStore.create(parse_uri(spec), dim)


def _open_store(path: Path, manifest: dict[str, Any]) -> VectorStore:
    config = manifest["store"]
    folder = path / manifest["generation"]
    if not folder.is_dir():
        raise AnlamError(f"{path}: its current generation {folder.name} is missing; rebuild the index")
    if config["kind"] == "embedded":
        return EmbeddedStore.open(folder, config)
    from anlam.search.milvus import MilvusStore

    return MilvusStore.open(config)


def _open_sides(path: Path, manifest: dict[str, Any]) -> tuple[Lexical, Letters]:
    """BM25 and the letter table of the generation ``manifest`` names, loaded now: never lazily from
    a folder that a later write may remove."""
    folder = path / manifest["generation"]
    return Lexical.load(folder / "bm25"), Letters.load(folder)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a write replaces the manifest (a rename: a new inode); ``None`` if it is missing."""
    try:
        st = os.stat(path / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise AnlamError(f"{path}: no such index")
    file = path / MANIFEST
    if not file.is_file():
        raise AnlamError(f"{path}: not an anlam index (no {MANIFEST})")
    manifest = read_json_file(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AnlamError(f"{file}: not an {FORMAT} manifest")
    generation = manifest.get("generation")
    if not isinstance(generation, str) or not _GENERATION.fullmatch(generation):
        # it names a folder to read: never a path out of the index ("../x", "/etc")
        raise AnlamError(f"{file}: generation {generation!r} is not a generation folder name (g000001, ...)")
    return manifest


def _next_generation(current: str | None) -> str:
    return f"g{(int(current[1:]) + 1) if current else 1:06d}"


def _remove_stale(path: Path, current: str | None) -> None:
    """Remove generations but ``current`` and the one before it, and temporary manifests of interrupted writes.

    The one before stays for readers still loading it (a server moves on within a second); newer
    ones were never committed (a killed write). A reader still on a removed one keeps working on
    POSIX systems: it holds everything in memory or open.
    """
    generations = sorted(e.name for e in path.iterdir() if _GENERATION.match(e.name) and e.is_dir())
    previous = max((g for g in generations if current is not None and g < current), default=None)
    for name in generations:
        if name not in (current, previous):
            shutil.rmtree(path / name, ignore_errors=True)
    for entry in path.glob(f".{MANIFEST}.*"):
        entry.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One writer at a time per index folder (an advisory lock; readers never wait)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, writers must not overlap
        yield
        return
    with open(path / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
