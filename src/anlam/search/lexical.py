"""BM25 over ASCII-folded Turkish terms (bm25s + PyStemmer).

Every word is Turkish-lower-cased ("I" -> "ı", "İ" -> "i"; suffixes after an apostrophe dropped:
"GPU'ların" -> "gpu"), ASCII-folded, and indexed as three terms: its Turkish Snowball stem
(``~``) and its first four and first six letters (``#4``, ``#6``; fixed-prefix stemming is a
strong Turkish baseline and reaches the verb suffixes Snowball leaves alone). Folding before
anything else means a query typed without Turkish letters ("asiri ogrenme") or in capitals
("AŞIRI ÖĞRENME", "ASIRI OGRENME", which Turkish lower-casing turns into "asırı ogrenme") has
exactly the terms of "aşırı öğrenme". Both sides go through ``anlam.text``, never ``str.lower()``.

Measured on the dev sets of ``benchmarks/search.py`` (BM25 MRR@10; bank, d2l-tr heading, first
sentence, summary, exercise): the earlier Turkish stems plus a folded shadow field (folded stem,
five-letter prefix) 0.804 / 0.404 / 0.265 / 0.885 / 0.661 for queries as written and 0.799 /
0.419 / 0.272 / 0.892 / 0.609 without Turkish letters; these folded terms 0.828 / 0.417 /
0.274 / 0.895 / 0.666, both ways (test: 0.814 / 0.468 / 0.226 / 0.786 / 0.507 before, 0.827 /
0.466 / 0.232 / 0.791 / 0.503 now). Words that fold alike ("sık", "sik") share terms; on these
sets that cost less than the Turkish stems' misses on folded and capitalised queries.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from anlam.errors import AnlamError
from anlam.text import ascii_fold, tokens

__all__ = ["FOLDED", "PREFIX", "STOPWORDS", "Lexical", "query_words", "terms", "terms_from_tokens"]

logger = logging.getLogger(__name__)

PathLike = Path | str
FOLDED = "~"
PREFIX = "#"
PREFIX_LETTERS = (4, 6)
IDS = "ids.npy"
# Function words and question words: frequent in user questions, no help in finding a definition.
STOPWORDS = frozenset(ascii_fold(w) for w in (
    "ve veya ile ya da de ki bir bu şu o için gibi daha çok en olan olarak ise yani her ama fakat ancak "
    "kadar sonra önce göre değil mi mı mu mü ne nedir neler nelerdir nasıl neden niçin niye hangi hangisi "
    "nerede kim midir mıdır mudur müdür şey ben sen biz siz onlar bunu şunu onu bunun onun"
).split())


def _bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
    return bm25s


@functools.cache
def _stemmer():
    import Stemmer

    stemmer = Stemmer.Stemmer("turkish")
    stemmer.maxCacheSize = 0  # its cache makes stemming slower on a large vocabulary (measured)
    return stemmer


def terms(text: str) -> list[str]:
    """Index terms of ``text``: folded Snowball stems, then folded 4- and 6-letter prefixes (see the module)."""
    return terms_from_tokens(tokens(text))


def terms_from_tokens(words: list[str]) -> list[str]:
    """``terms`` of a text already split by ``anlam.text.tokens``."""
    folded = _content(words)
    return ([FOLDED + s for s in _stemmer().stemWords(folded)]
            + [f"{PREFIX}{n}{w[:n]}" for n in PREFIX_LETTERS for w in folded])


def query_words(text: str) -> int:
    """How many different words of ``text`` BM25 searches for (folded, function words left out; at least 1)."""
    return max(1, len(set(_content(tokens(text)))))


def _content(words: list[str]) -> list[str]:
    folded = ascii_fold(" ".join(words)).split(" ") if words else []  # one fold per text, not per word
    return [word for word in folded if word not in STOPWORDS]


class Lexical:
    """A BM25 index over passage ids; ``search`` returns the best ids with their scores."""

    def __init__(self, bm25, ids: np.ndarray) -> None:
        self.bm25 = bm25
        self.ids = ids

    @classmethod
    def build(cls, items: Iterable[tuple[int, str]]) -> Lexical:
        """Index ``(passage id, space-separated terms)`` pairs, as stored next to each passage."""
        bm25s = _bm25s()
        ids: list[int] = []
        corpus: list[list[int]] = []
        vocab: dict[str, int] = {}
        for pid, joined in items:
            ids.append(pid)
            # term ids straight away: each list holds references to one shared int per term, where
            # lists of strings would hold a new string per occurrence (a gigabyte at 100k passages)
            corpus.append([vocab.setdefault(term, len(vocab)) for term in joined.split()])
        if not vocab:
            return cls(None, np.asarray(ids, dtype=np.int64))
        bm25 = bm25s.BM25()
        bm25.index((corpus, vocab), show_progress=False)
        return cls(bm25, np.asarray(ids, dtype=np.int64))

    def save(self, folder: PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / IDS, self.ids)
        if self.bm25 is not None:
            self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: PathLike) -> Lexical:
        """The index saved in ``folder``, read whole into memory (no pickles, no memory map).

        Raises:
            AnlamError: a file is missing or unreadable.
        """
        bm25s = _bm25s()
        folder = Path(folder)
        try:
            ids = np.load(folder / IDS, allow_pickle=False)
            if not len(ids):
                return cls(None, ids)
            return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0), ids)
        except FileNotFoundError as exc:
            raise AnlamError(f"{exc.filename}: missing; the index is incomplete (rebuild it)") from None
        except (OSError, ValueError) as exc:
            raise AnlamError(f"{folder}: cannot read the BM25 index ({exc})") from None

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and BM25 scores of the ``k`` best passages with a score above 0.

        ``allowed`` (sorted passage ids) restricts the search to those passages.
        """
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.bm25 is None:
            return empty
        token_ids = self.bm25.get_tokens_ids(terms(query))
        if not token_ids:
            return empty
        scores = self.bm25.get_scores_from_ids(token_ids)
        if allowed is not None:
            scores = np.where(np.isin(self.ids, allowed, assume_unique=True), scores, 0.0)
        return _top(scores, self.ids, k)


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    order = positive[np.argsort(-scores[positive], kind="stable")]
    return ids[order], scores[order].astype(np.float32)
