"""Splitting documents into passages: by Markdown headings first, then by sentences with overlap.

A passage is what gets embedded and ranked. Headings give it context (the heading path is put
in front of the text that is embedded and indexed), sentences keep it readable, and the
overlap of one sentence between neighbours keeps an answer that straddles a cut findable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from anlam.data.readers import Document
from anlam.errors import AnlamError
from anlam.text import clean, tr_lower

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")
# Abbreviations after which a full stop does not end a Turkish sentence.
_ABBREVIATIONS = frozenset({"vb", "vs", "örn", "bkz", "dr", "prof", "doç", "yrd", "sn", "no", "yy", "md", "şek", "tab"})


@dataclass
class Passage:
    """A piece of a document: ``position`` counts passages within the document from 0."""

    doc_id: str
    text: str
    position: int
    title: str = ""
    heading: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def context(self) -> str:
        """The title and heading path in front of the text: what is embedded and indexed."""
        parts = [p for p in (self.title, self.heading) if p]
        if len(parts) == 2 and (self.heading == self.title or self.heading.startswith(f"{self.title} > ")):
            parts = [self.heading]  # a Markdown title is also the first heading
        return "\n".join([" > ".join(parts), self.text]) if parts else self.text


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph: a cut after . ! ? … when an upper-case letter or digit follows."""
    text = clean(text)
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        following = text[match.end() : match.end() + 1]
        if not (following.isupper() or following.isdigit() or following in "\"'“(["):
            continue
        last_word = text[start : match.start()].rsplit(maxsplit=1)[-1:]
        if last_word and tr_lower(last_word[0]).strip("(") in _ABBREVIATIONS:
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences


def sections(text: str) -> Iterator[tuple[str, str]]:
    """``(heading path, body)`` pairs; headings inside fenced code blocks are not headings."""
    path: list[str] = []
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        if any(b.strip() for b in body):
            yield " > ".join(path), "\n".join(body)
        body = []
        level = len(match.group(1))
        path = path[: level - 1] + [clean(match.group(2))]
    if any(b.strip() for b in body):
        yield " > ".join(path), "\n".join(body)


@dataclass
class Chunker:
    """Cuts documents into passages of at most ``max_words`` words, ``overlap`` sentences shared."""

    max_words: int = 120
    overlap: int = 1

    def __post_init__(self) -> None:
        if self.max_words < 8:
            raise AnlamError(f"passages need at least 8 words, got max_words={self.max_words}")
        if self.overlap < 0:
            raise AnlamError(f"overlap must be 0 or more sentences, got {self.overlap}")

    def split(self, doc: Document) -> list[Passage]:
        """Passages of ``doc``, numbered from 0, each carrying its id, title, metadata and source."""
        passages: list[Passage] = []
        for heading, body in sections(doc.text):
            for text in self._pack(self._sentences(body)):
                passages.append(Passage(doc.id, text, len(passages), doc.title, heading, doc.metadata, doc.source))
        return passages

    def _sentences(self, body: str) -> list[str]:
        """Sentences of every paragraph; a sentence over ``max_words`` is cut into word windows."""
        out: list[str] = []
        for paragraph in re.split(r"\n\s*\n", body):
            for sentence in split_sentences(paragraph):
                words = sentence.split()
                out.extend(" ".join(words[i : i + self.max_words]) for i in range(0, len(words), self.max_words))
        return out

    def _pack(self, sentences: list[str]) -> Iterator[str]:
        """Greedy packing of whole sentences; each new passage repeats the last ``overlap`` ones."""
        sizes = [len(s.split()) for s in sentences]
        start = 0
        while start < len(sentences):
            end, words = start, 0
            while end < len(sentences) and (end == start or words + sizes[end] <= self.max_words):
                words += sizes[end]
                end += 1
            yield " ".join(sentences[start:end])
            if end == len(sentences):
                return
            start = max(start + 1, end - self.overlap)
