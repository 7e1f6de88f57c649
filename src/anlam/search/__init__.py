"""Semantic search over Turkish documents: a persistent index with dense, BM25 and hybrid ranking.

``Index.build(docs, out)`` / ``Index.load(path)``, then ``add``, ``delete``, ``search``, ``info``; documents are
``anlam.data.Document`` objects or files and folders that ``anlam.data.read_documents`` reads.
"""

from anlam.search.chunking import Chunker, Passage
from anlam.search.index import Hit, Index, parse_filters

__all__ = ["Chunker", "Hit", "Index", "Passage", "parse_filters"]
