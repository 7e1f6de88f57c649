"""The Milvus backend of ``VectorStore``: Milvus Lite (``milvus:PATH.db``) or a server (``http://host:19530``).

One collection holds each passage's vector, text, document fields and metadata; the index
folder keeps the manifest and the BM25 side. Passage ids only grow, and the manifest records
the first id not yet committed: rows at or above it (left by an interrupted ``add``) are
invisible to searches and removed by the next write. Deletions happen in Milvus before the
manifest moves on, so an interrupted ``delete`` or replacing ``add`` may already have removed
a document, but no search ever sees half of a new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anlam.errors import AnlamError
from anlam.search.chunking import Passage
from anlam.search.store import ID_KEY, Filter, tag_value

logger = logging.getLogger(__name__)

_FIELDS = ["doc_id", "text", "position", "title", "heading", "metadata", "source"]
_LIMITS = {"doc_id": 2048, "title": 4096, "heading": 4096, "source": 4096, "text": 65535, "terms": 65535}
_PAGE = 2000


def parse_uri(spec: str) -> str:
    """``milvus:PATH.db`` -> absolute Lite path; ``http(s)://...`` as is; anything else is an error."""
    if spec.startswith("milvus:"):
        path = Path(spec[len("milvus:") :]).expanduser()
        if path.suffix != ".db":
            raise AnlamError(f"--store {spec}: a Milvus Lite path must end in .db")
        return str(path.resolve())
    if spec.startswith(("http://", "https://")):
        return spec
    raise AnlamError(f"--store {spec}: expected 'embedded', 'milvus:PATH.db' or 'http://host:19530'")


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise AnlamError("the Milvus store needs pymilvus (and milvus-lite for .db files): "
                         "pip install 'anlam[milvus]'") from None
    # pymilvus logs every failed call with a traceback before raising (we turn the exception into
    # one clear error) and warns when its iterator falls back to client-side timestamps; Milvus
    # Lite's in-process server logs each call it does not implement. All of it is noise here.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    if not uri.startswith(("http://", "https://")):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(uri)
    except Exception as exc:  # pymilvus raises its own and grpc's exception types
        raise AnlamError(f"cannot connect to Milvus at {uri} ({exc})") from None


@contextlib.contextmanager
def _errors(uri: str) -> Iterator[None]:
    """A failed Milvus call as one ``AnlamError`` naming the server."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        raise AnlamError(f"Milvus at {uri}: {exc.message}") from None


class MilvusStore:
    """Passages and vectors in one Milvus collection; ids at or above ``visible_below`` are uncommitted."""

    kind = "milvus"

    def __init__(self, client, config: dict[str, Any]) -> None:
        self.client = client
        self._config = config

    @classmethod
    def create(cls, uri: str, dim: int) -> MilvusStore:
        """A new, empty collection (named ``anlam_<random>``) for ``dim``-dimensional vectors."""
        from pymilvus import DataType

        client = _client(uri)
        name = f"anlam_{uuid.uuid4().hex[:12]}"
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for field, limit in _LIMITS.items():
            schema.add_field(field, DataType.VARCHAR, max_length=limit)
        schema.add_field("position", DataType.INT64)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("tags", DataType.JSON)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        return cls(client, {"kind": cls.kind, "uri": uri, "collection": name, "dim": dim, "visible_below": 0})

    @classmethod
    def open(cls, config: dict[str, Any]) -> MilvusStore:
        client = _client(config["uri"])
        with _errors(config["uri"]):
            if not client.has_collection(config["collection"]):
                raise AnlamError(f"Milvus at {config['uri']} has no collection {config['collection']} (dropped?)")
            client.load_collection(config["collection"])
        return cls(client, dict(config))

    @property
    def name(self) -> str:
        return self._config["collection"]

    def _visible(self, where: Filter | None = None) -> str:
        parts = [f"id < {self._config['visible_below']}"]
        for key, values in (where or {}).items():
            field = "doc_id" if key == ID_KEY else f"tags[{json.dumps(key, ensure_ascii=False)}]"
            parts.append("(" + " or ".join(f"{field} == {json.dumps(v, ensure_ascii=False)}" for v in values) + ")")
        return " and ".join(parts)

    def _iterate(self, expr: str, fields: list[str]) -> Iterator[dict]:
        with _errors(self._config["uri"]):
            iterator = self.client.query_iterator(self.name, batch_size=_PAGE, filter=expr, output_fields=fields)
            try:
                while rows := iterator.next():
                    yield from rows
            finally:
                iterator.close()

    def count(self) -> int:
        with _errors(self._config["uri"]):
            rows = self.client.query(self.name, filter=self._visible(), output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def existing(self, doc_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(doc_ids), 500):
            chunk = json.dumps(list(doc_ids[start : start + 500]), ensure_ascii=False)
            found.update(row["doc_id"] for row in self._iterate(f"{self._visible()} and doc_id in {chunk}", ["doc_id"]))
        return found

    def filter_ids(self, where: Filter) -> np.ndarray:
        return np.sort(np.fromiter((row["id"] for row in self._iterate(self._visible(where), ["id"])), dtype=np.int64))

    def search(self, vectors: np.ndarray, k: int, where: Filter | None = None) -> list[list[tuple[int, float]]]:
        if not len(vectors):
            return []
        with _errors(self._config["uri"]):
            results = self.client.search(self.name, data=[v.tolist() for v in vectors], limit=k,
                                         filter=self._visible(where), output_fields=["id"])
        return [[(int(hit["id"]), float(hit["distance"])) for hit in hits] for hits in results]

    def get(self, ids: Sequence[int]) -> dict[int, Passage]:
        if not len(ids):
            return {}
        with _errors(self._config["uri"]):
            rows = self.client.get(self.name, ids=[int(i) for i in ids], output_fields=_FIELDS)
        below = self._config["visible_below"]
        return {row["id"]: Passage(row["doc_id"], row["text"], row["position"], row["title"], row["heading"],
                                   row["metadata"], row["source"]) for row in rows if row["id"] < below}

    def terms(self) -> Iterator[tuple[int, str]]:
        rows = sorted(((row["id"], row["terms"]) for row in self._iterate(self._visible(), ["id", "terms"])))
        yield from rows

    def commit(self, folder: Path, passages: Sequence[Passage], terms: Sequence[str], vectors: np.ndarray,
               ids: np.ndarray, delete_docs: Sequence[str]) -> MilvusStore:
        with _errors(self._config["uri"]):
            return self._commit(passages, terms, vectors, ids, delete_docs)

    def _commit(self, passages: Sequence[Passage], terms: Sequence[str], vectors: np.ndarray, ids: np.ndarray,
                delete_docs: Sequence[str]) -> MilvusStore:
        below = self._config["visible_below"]
        self.client.delete(self.name, filter=f"id >= {below}")  # left by an interrupted add
        for start in range(0, len(delete_docs), 500):
            chunk = json.dumps(list(delete_docs[start : start + 500]), ensure_ascii=False)
            self.client.delete(self.name, filter=f"doc_id in {chunk}")
        rows = [_row(int(i), p, t, v) for i, p, t, v in zip(ids, passages, terms, vectors)]
        for start in range(0, len(rows), _PAGE):
            self.client.insert(self.name, rows[start : start + _PAGE])
        top = int(max(ids)) + 1 if len(ids) else below
        self._config = {**self._config, "visible_below": max(below, top)}
        return self  # one collection: the store moves on in place

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def info(self) -> dict[str, Any]:
        return {"store": f"Milvus at {self._config['uri']}", "collection": self.name,
                "vector_index": "AUTOINDEX (chosen by Milvus)"}

    def drop(self) -> None:
        self.client.drop_collection(self.name)

    def close(self) -> None:
        self.client.close()


def _row(pid: int, p: Passage, terms: str, vector: np.ndarray) -> dict[str, Any]:
    row = {"id": pid, "vector": vector.tolist(), "doc_id": p.doc_id, "text": p.text, "position": p.position,
           "title": p.title, "heading": p.heading, "source": p.source, "terms": terms,
           "metadata": p.metadata, "tags": {key: tag_value(value) for key, value in p.metadata.items()}}
    for field, limit in _LIMITS.items():
        if len(row[field].encode("utf-8")) > limit:
            raise AnlamError(f"{p.source}: document {p.doc_id!r}: {field} longer than Milvus allows ({limit} bytes)")
    return row
