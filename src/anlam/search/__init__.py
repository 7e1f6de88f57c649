"""Semantic search over Turkish documents: a persistent index with dense, BM25 and hybrid ranking.

``Index.build(docs, out)`` / ``Index.load(path)``, then ``add``, ``delete``, ``search``, ``info``.
"""

from anlam.search.chunking import Chunker, Passage
from anlam.search.documents import Document, read_documents
from anlam.search.index import Hit, Index, parse_filters

__all__ = ["Chunker", "Document", "Hit", "Index", "Passage", "parse_filters", "read_documents"]
