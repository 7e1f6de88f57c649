"""Where passages and their vectors live: the ``VectorStore`` protocol and the embedded store.

The embedded store keeps vectors in FAISS and passages, documents and metadata in SQLite, both
inside one generation folder of the index. It is exact (a flat inner-product index) while the
index is small and switches to an approximate HNSW graph at ``ann_threshold`` passages. HNSW
cannot remove vectors, so a deleted passage stays in the graph as a tombstone that searches
skip, until tombstones pass a fifth of the graph and it is rebuilt. A store is
never changed in place: ``commit`` writes the next generation into a new folder and returns the
store that reads it, so a reader (or a killed writer) always sees one complete generation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anlam.errors import AnlamError
from anlam.search.chunking import Passage

logger = logging.getLogger(__name__)

Filter = dict[str, list[str]]
"""``--filter`` conditions: metadata key -> accepted values (any of them); all keys must match.
The key ``id`` matches the document id."""

ID_KEY = "id"
DEFAULT_ANN_THRESHOLD = 50_000
DEFAULT_EF_SEARCH = 64
HNSW_M = 32
TOMBSTONE_LIMIT = 0.2  # rebuild the HNSW graph when this share of it is deleted passages
EXACT_SUBSET = 20_000  # a filter leaving at most this many passages is searched exactly
FEW_QUERIES = 16  # fewer queries than this are searched on one thread
DB_NAME = "passages.sqlite"
VECTORS_NAME = "vectors.faiss"

_SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE passages (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, position INTEGER NOT NULL,
                       heading TEXT NOT NULL, text TEXT NOT NULL, terms TEXT NOT NULL);
CREATE INDEX passages_doc ON passages(doc_id);
CREATE TABLE tags (doc_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX tags_key ON tags(key, value);
CREATE INDEX tags_doc ON tags(doc_id);
"""


def tag_value(value: Any) -> str:
    """The text a metadata value is matched as by ``--filter``: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class VectorStore(Protocol):
    """Passages, their metadata and their unit vectors, searched by inner product."""

    kind: str

    def count(self) -> int:
        """Number of passages."""

    def existing(self, doc_ids: Sequence[str]) -> set[str]:
        """Which of ``doc_ids`` are in the store."""

    def search(self, vectors: np.ndarray, k: int, where: Filter | None = None) -> list[list[tuple[int, float]]]:
        """For each query vector, up to ``k`` ``(passage id, inner product)`` pairs, best first."""

    def filter_ids(self, where: Filter) -> np.ndarray:
        """Sorted ids of the passages whose documents match ``where``."""

    def get(self, ids: Sequence[int]) -> dict[int, Passage]:
        """Passages by id (ids not in the store are left out)."""

    def terms(self) -> Iterator[tuple[int, str]]:
        """``(passage id, space-separated BM25 terms)`` for every passage."""

    def commit(self, folder: Path, passages: Sequence[Passage], terms: Sequence[str], vectors: np.ndarray,
               ids: np.ndarray, delete_docs: Sequence[str]) -> VectorStore:
        """Remove ``delete_docs``, add ``passages`` under ``ids``; return the store of the new generation.

        ``folder`` is the new generation's folder (created by the caller's transaction). The
        embedded store writes its files there and leaves ``self`` unchanged; a store outside the
        folder (Milvus) changes in place and returns itself.
        """

    def config(self) -> dict[str, Any]:
        """What the manifest records to open this store again."""

    def info(self) -> dict[str, Any]:
        """Facts for ``anlam index info``."""

    def drop(self) -> None:
        """Delete what lives outside the index folder (called once a rebuild replaced this store)."""

    def close(self) -> None: ...


class EmbeddedStore:
    """FAISS vectors + SQLite passages in one generation folder (or empty, before the first commit)."""

    kind = "embedded"

    def __init__(self, db: sqlite3.Connection, index, config: dict[str, Any]) -> None:
        self.db = db
        self.index = index
        self._config = config
        self._dead: np.ndarray | None = None
        if self.approximate:
            _hnsw(index).efSearch = config["ef_search"]

    @classmethod
    def create(cls, dim: int, ann_threshold: int = DEFAULT_ANN_THRESHOLD,
               ef_search: int = DEFAULT_EF_SEARCH) -> EmbeddedStore:
        """An empty store for ``dim``-dimensional vectors (in memory until the first ``commit``)."""
        import faiss

        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(_SCHEMA)
        config = {"kind": cls.kind, "dim": dim, "ann_threshold": ann_threshold, "ef_search": ef_search,
                  "vector_index": "flat"}
        return cls(db, faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), config)

    @classmethod
    def open(cls, folder: Path, config: dict[str, Any]) -> EmbeddedStore:
        """The store of one generation folder: the vectors read whole, the SQLite file held open.

        An open file stays readable after a later write removes the folder (POSIX), so a reader
        never needs the folder again once this returns.

        Raises:
            AnlamError: a file is missing or unreadable.
        """
        import faiss

        for name in (DB_NAME, VECTORS_NAME):
            if not (folder / name).is_file():
                raise AnlamError(f"{folder / name}: missing; the index is incomplete (rebuild it)")
        try:
            index = faiss.read_index(str(folder / VECTORS_NAME))
        except RuntimeError as exc:  # what FAISS raises for any file it cannot read
            raise AnlamError(f"{folder / VECTORS_NAME}: cannot read the vectors ({str(exc).splitlines()[0]})") from None
        try:
            db = _read_only(folder)
            db.execute("SELECT 1 FROM passages LIMIT 1").fetchone()  # reads the schema: a SQLite file of ours
        except sqlite3.Error as exc:
            raise AnlamError(f"{folder / DB_NAME}: cannot read the passages ({exc})") from None
        return cls(db, index, dict(config))

    @property
    def approximate(self) -> bool:
        return self._config["vector_index"] == "hnsw"

    @property
    def dead(self) -> np.ndarray:
        """Sorted ids of tombstones: vectors still in the HNSW graph whose passages are deleted."""
        if self._dead is None:
            self._dead = np.zeros(0, dtype=np.int64)
            if self.approximate:
                import faiss

                graph = np.sort(faiss.vector_to_array(self.index.id_map))
                self._dead = np.setdiff1d(graph, self.filter_ids({}), assume_unique=True)
        return self._dead

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]

    def existing(self, doc_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(doc_ids), 500):
            rows = self.db.execute(f"SELECT doc_id FROM documents WHERE doc_id IN ({_marks(chunk)})", chunk)
            found.update(row[0] for row in rows)
        return found

    def filter_ids(self, where: Filter) -> np.ndarray:
        sql, args = ["SELECT p.id FROM passages p"], []
        for n, (key, values) in enumerate((k, v) for k, v in where.items() if k != ID_KEY):
            # one join per key, so SQLite starts from the (key, value) index instead of scanning passages
            sql.append(f"JOIN tags t{n} ON t{n}.doc_id = p.doc_id AND t{n}.key = ? AND t{n}.value IN ({_marks(values)})")
            args += [key, *values]
        if ID_KEY in where:
            sql.append(f"WHERE p.doc_id IN ({_marks(where[ID_KEY])})")
            args += where[ID_KEY]
        rows = self.db.execute(" ".join(sql) + " ORDER BY p.id", args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def search(self, vectors: np.ndarray, k: int, where: Filter | None = None) -> list[list[tuple[int, float]]]:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index.ntotal == 0:
            return [[] for _ in vectors]
        selector: Any = None  # faiss's bundled .pyi lacks classes and overloads it has at run time
        if where:
            allowed = self.filter_ids(where)
            if len(allowed) <= EXACT_SUBSET:
                return self._exact(vectors, allowed, k)
            selector = faiss.IDSelectorBatch(allowed)
        elif len(self.dead):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.dead))
        params = None
        if selector is not None:
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=self._config["ef_search"])  # type: ignore[attr-defined]
                      if self.approximate else faiss.SearchParameters(sel=selector))  # type: ignore[call-arg]
        with _threads(1 if len(vectors) < FEW_QUERIES else None):
            scores, ids = self.index.search(vectors, min(k, self.index.ntotal), params=params)
        return _pairs(scores, ids)

    def _exact(self, vectors: np.ndarray, ids: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Exact search over the passages ``ids`` only (what a selective filter leaves)."""
        import faiss

        if not len(ids):
            return [[] for _ in vectors]
        with _threads(1 if len(vectors) < FEW_QUERIES else None):
            scores, rows = faiss.knn(vectors, self.index.reconstruct_batch(ids), min(k, len(ids)),
                                     metric=faiss.METRIC_INNER_PRODUCT)
        return _pairs(scores, np.where(rows >= 0, ids[rows], -1))

    def get(self, ids: Sequence[int]) -> dict[int, Passage]:
        out: dict[int, Passage] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            rows = self.db.execute(
                "SELECT p.id, p.doc_id, p.text, p.position, d.title, p.heading, d.metadata, d.source "
                f"FROM passages p JOIN documents d USING (doc_id) WHERE p.id IN ({_marks(chunk)})", chunk)
            for pid, doc_id, text, position, title, heading, metadata, source in rows:
                out[pid] = Passage(doc_id, text, position, title, heading, json.loads(metadata), source)
        return out

    def terms(self) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT id, terms FROM passages ORDER BY id")

    def commit(self, folder: Path, passages: Sequence[Passage], terms: Sequence[str], vectors: np.ndarray,
               ids: np.ndarray, delete_docs: Sequence[str]) -> EmbeddedStore:
        import faiss

        db = sqlite3.connect(folder / DB_NAME)
        self.db.backup(db)
        with db:
            removed = _delete_docs(db, delete_docs)
            _insert(db, passages, terms, ids)
        all_ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM passages ORDER BY id")), dtype=np.int64)
        db.close()
        index = faiss.clone_index(self.index)
        if len(removed) and not self.approximate:  # HNSW keeps them as tombstones
            index.remove_ids(removed)  # type: ignore[arg-type]  # the Python wrapper takes an id array
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        index, config = _reshape(index, all_ids, dict(self._config))
        faiss.write_index(index, str(folder / VECTORS_NAME))
        return EmbeddedStore(_read_only(folder), index, config)

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def info(self) -> dict[str, Any]:
        c = self._config
        return {
            "store": "embedded (FAISS + SQLite)",
            "vector_index": f"HNSW{HNSW_M}, approximate (efSearch {c['ef_search']})" if self.approximate else "flat, exact",
            "ann_threshold": c["ann_threshold"],
            "vectors": int(self.index.ntotal) - len(self.dead),
            "tombstones": len(self.dead),
        }

    def drop(self) -> None:
        """Nothing to do: everything lives in the generation folder the index removes."""

    def close(self) -> None:
        self.db.close()


def _reshape(index, ids: np.ndarray, config: dict[str, Any]):
    """HNSW from ``ann_threshold`` live passages on (rebuilt when too many tombstones), flat below."""
    import faiss

    n, approximate = len(ids), config["vector_index"] == "hnsw"
    want = n >= config["ann_threshold"]
    if want == approximate and (not approximate or index.ntotal - n <= TOMBSTONE_LIMIT * index.ntotal):
        return index, config
    vectors = index.reconstruct_batch(ids) if n else np.zeros((0, config["dim"]), dtype=np.float32)
    if want:
        logger.info("%d passages: building an approximate HNSW index", n)
        fresh = faiss.IndexIDMap2(faiss.IndexHNSWFlat(config["dim"], HNSW_M, faiss.METRIC_INNER_PRODUCT))
    else:
        logger.info("%d passages: back to an exact flat index", n)
        fresh = faiss.IndexIDMap2(faiss.IndexFlatIP(config["dim"]))
    fresh.add_with_ids(vectors, ids)
    return fresh, {**config, "vector_index": "hnsw" if want else "flat"}


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run FAISS on ``count`` OpenMP threads in this thread (``None``: unchanged).

    One query gains nothing from a thread team and loses a lot when the cores are busy
    (measured on 2 shared cores: flat search 8 ms on one thread, 76 ms on two).
    """
    import faiss

    if count is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _hnsw(index):
    """The ``IndexHNSW`` inside an ``IndexIDMap2``."""
    import faiss

    return faiss.downcast_index(index.index).hnsw


def _read_only(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{(folder / DB_NAME).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def _pairs(scores: np.ndarray, ids: np.ndarray) -> list[list[tuple[int, float]]]:
    """FAISS results as ``(id, score)`` lists per query, without the -1 padding."""
    return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
            for row_ids, row_scores in zip(ids, scores)]


def _delete_docs(db: sqlite3.Connection, doc_ids: Sequence[str]) -> np.ndarray:
    """Delete documents with their passages and tags; return the removed passage ids."""
    if not doc_ids:
        return np.zeros(0, dtype=np.int64)
    db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (doc_id TEXT PRIMARY KEY)")
    db.execute("DELETE FROM gone")
    db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", ((d,) for d in doc_ids))
    removed = np.fromiter((r[0] for r in db.execute(
        "SELECT id FROM passages WHERE doc_id IN (SELECT doc_id FROM gone)")), dtype=np.int64)
    for table in ("passages", "tags", "documents"):
        db.execute(f"DELETE FROM {table} WHERE doc_id IN (SELECT doc_id FROM gone)")
    return removed


def _insert(db: sqlite3.Connection, passages: Sequence[Passage], terms: Sequence[str], ids: np.ndarray) -> None:
    docs: dict[str, Passage] = {}
    for p in passages:
        docs.setdefault(p.doc_id, p)
    db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?)", (
        (p.doc_id, p.title, p.source, json.dumps(p.metadata, ensure_ascii=False)) for p in docs.values()))
    db.executemany("INSERT INTO tags VALUES (?, ?, ?)", (
        (p.doc_id, key, tag_value(value)) for p in docs.values() for key, value in p.metadata.items()))
    db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)", (
        (int(i), p.doc_id, p.position, p.heading, p.text, t) for i, p, t in zip(ids, passages, terms)))


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
