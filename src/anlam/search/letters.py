"""Putting Turkish letters back into queries typed without them, from the index's own words.

BM25 folds every word to ASCII, so "asiri ogrenme" has the terms of "aşırı öğrenme", but the
embedding of "asiri ogrenme" lands far from that of "aşırı öğrenme". The index therefore counts
the word forms of its passages; in a query, a word typed without Turkish letters becomes the most
frequent indexed form that folds to it ("asiri" -> "aşırı"), unless the ASCII form itself is the
most frequent. Counts only grow (deleting a document leaves its words), which at worst restores a
word to a real Turkish spelling the index no longer contains. On the dev sets of
``benchmarks/search.py`` this takes dense MRR@10 of queries typed without Turkish letters from
0.33 to 0.44 (d2l-tr headings) and from 0.76 to 0.82 (bank questions), base model; the
queries as written get 0.46 and 0.83. A word the index has in no form stays as typed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from anlam.errors import AnlamError
from anlam.io import read_json_file
from anlam.text import ascii_fold, tr_lower, tr_upper

PathLike = Path | str
WORDS = "words.json"
# Question and function words a definition rarely contains but a question does; counted once in
# every index so "nasil" and "icin" come back as "nasıl" and "için".
COMMON = ("nedir nasıl niçin için çok değil göre önce sonra şu şey şöyle böyle hangisi nelerdir çünkü "
          "ayrıca kullanılır kullanılan arasındaki farkı fark işe yarar").split()
_WORD = re.compile(r"\w+")


class Letters:
    """Word counts of an index and the restoration they imply."""

    def __init__(self, counts: Counter[str] | None = None) -> None:
        self.counts = counts if counts is not None else Counter(COMMON)
        self._table: dict[str, str] | None = None

    def add(self, words: Iterable[str] | Counter[str]) -> Letters:
        """A new ``Letters`` with more words counted (words from ``anlam.text.tokens``, or their ``Counter``)."""
        counts = Counter(self.counts)
        counts.update(words)
        return Letters(counts)

    @property
    def table(self) -> dict[str, str]:
        """ASCII-folded word -> its most frequent indexed form (which may be the ASCII form itself)."""
        if self._table is None:
            best: dict[str, tuple[int, str]] = {}
            for word, count in self.counts.items():
                key = ascii_fold(word)
                if key not in best or count > best[key][0]:
                    best[key] = (count, word)
            self._table = {key: word for key, (_, word) in best.items()}
        return self._table

    def restore(self, text: str, all_words: bool = False) -> str:
        """``text`` with its letter-less words restored; ``all_words`` also re-reads words with Turkish letters.

        ``all_words`` is for text that was typed in capitals and lower-cased: "ASIRI" becomes
        "asırı" under Turkish rules (and "NEDIR" "nedır"): only the index can tell what was meant.
        """
        if not self.counts:
            return text

        def swap(match: re.Match) -> str:
            word = match.group(0)
            lower = tr_lower(word)
            key = ascii_fold(lower)
            if not all_words and ascii_fold(word) != word:
                return word  # typed with Turkish letters (judged before lower-casing: "Ilkleme" was "İlkleme")
            form = self.table.get(key)
            if form is None or form == lower:
                return word
            return form if word == lower else tr_upper(form[:1]) + form[1:]

        return _WORD.sub(swap, text)

    def save(self, folder: PathLike) -> None:
        path = Path(folder) / WORDS
        path.write_text(json.dumps(dict(self.counts.most_common()), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: PathLike) -> Letters:
        """The counts saved in ``folder`` (every index generation has them).

        Raises:
            AnlamError: the file is missing or not a JSON object of word counts.
        """
        path = Path(folder) / WORDS
        if not path.is_file():
            raise AnlamError(f"{path}: missing; the index is incomplete (rebuild it)")
        counts = read_json_file(path)
        if not isinstance(counts, dict) or not all(isinstance(n, int) for n in counts.values()):
            raise AnlamError(f"{path}: not a JSON object of word counts")
        return cls(Counter(counts))
