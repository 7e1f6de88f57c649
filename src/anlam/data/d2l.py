"""d2l-tr: real Turkish ML prose (Dive into Deep Learning, translated by people) as evaluation and training data.

The concept bank shares authors and templates with its own dev/test split, so it alone overstates
what a recipe gives. d2l-tr was written by people who never saw the bank. ``extract`` reads the
book's Markdown once (``anlam data d2l SRC --out DIR``) into two small files shipped in
``anlam/data/public/d2l-tr``: ``blocks.parquet`` (every heading and prose paragraph, with its
English original where the section's blocks align one to one) and ``glossary.csv`` (the
translators' EN-TR terms). The tasks are built from those by code, split by chapter (fixed below)
so training may use train chapters only; the glossary is split by a hash of the English term.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from importlib.resources import files
from pathlib import Path

import pandas as pd

from anlam.errors import AnlamError
from anlam.io import D2L_EXTRACT, check_output_folder, output_folder
from anlam.text import clean, search_key

PathLike = Path | str
SPLITS = ("train", "dev", "test")
# whole chapters per split (about 16 % of the prose each for dev and test); every other chapter is train
CHAPTERS = {
    "dev": ("chapter_multilayer-perceptrons", "chapter_attention-mechanisms", "chapter_recommender-systems",
            "chapter_deep-learning-computation"),
    "test": ("chapter_optimization", "chapter_recurrent-neural-networks",
             "chapter_natural-language-processing-applications", "chapter_generative-adversarial-networks"),
}
SKIPPED_CHAPTERS = ("chapter_references", "chapter_notation", "chapter_installation")
GENERIC_HEADING_COUNT = 3  # a heading used this often in the book ("Özet", "Eğitim") names no section

_FENCE = re.compile(r"^\s*```")
_ROLE = re.compile(r":(?:label|numref|eqref|cite|eqlabel|width|ref|numlabel)s?:`[^`]*`")
_BOLD_BRACKET = re.compile(r"\[\*\*(.+?)\*\*\]")
_EMPHASIS = re.compile(r"(\*\*|\*|__)(\S(?:.*?\S)?)\1")
_CODE = re.compile(r"`([^`]*)`")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MATH = re.compile(r"\$([^$]+)\$")
_TEX = re.compile(r"\\[a-zA-Z]+|[{}^_\\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÇĞİÖŞÜ])")


def _inline(text: str) -> str:
    """Markdown/TeX markup out, words in: the text a reader sees."""
    text = _ROLE.sub("", text)
    text = _BOLD_BRACKET.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _MATH.sub(lambda m: _TEX.sub(" ", m.group(1)), text)
    text = _CODE.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return clean(text)


def _blocks(markdown: str) -> list[tuple[str, bool]]:
    """Blank-line-separated blocks, each with whether it touches a code cell.

    The split is the naive one on purpose: the Turkish and English files align block for block
    under it, fences included, in 144 of the book's sections.
    """
    blocks: list[tuple[str, bool]] = []
    lines: list[str] = []
    in_code = touched = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_code, touched = not in_code, True
        elif in_code:
            touched = True
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append(("\n".join(lines), touched))
            lines, touched = [], in_code
    if lines:
        blocks.append(("\n".join(lines), touched))
    return blocks


def _classify(block: str, code: bool) -> tuple[str, int, str]:
    """``(kind, heading level, text)``; kind is heading, paragraph or other (code, maths, figures)."""
    first = block.lstrip()
    if code:
        return "other", 0, ""
    if first.startswith("#"):
        level = len(first) - len(first.lstrip("#"))
        return "heading", level, _inline(first.splitlines()[0].lstrip("#"))
    if first.startswith(("$$", "![", ":", "|", "<", "```", "@", "%")):
        return "other", 0, ""
    text = _inline(" ".join(line.strip() for line in block.splitlines()))
    letters = sum(ch.isalpha() for ch in text)
    if len(text.split()) < 8 or letters < 0.6 * len(text):
        return "other", 0, ""
    return "paragraph", 0, text


def _section_rows(chapter: str, section: str, turkish: str, english: str | None) -> list[dict]:
    tr_blocks = _blocks(turkish)
    en_blocks = _blocks(english) if english is not None else []
    aligned = len(tr_blocks) == len(en_blocks)
    rows, heading, level = [], "", 0
    for index, (block, code) in enumerate(tr_blocks):
        kind, depth, text = _classify(block, code)
        if kind == "heading":
            heading, level = text, depth
        if kind == "other" or not text:
            continue
        en = ""
        if aligned:
            en_kind, _, en_text = _classify(*en_blocks[index])
            en = en_text if en_kind == kind else ""
        rows.append({"chapter": chapter, "section": section, "block": index, "kind": kind, "level": level,
                     "heading": heading, "tr": text, "en": en})
    return rows


def _glossary(path: Path) -> pd.DataFrame:
    """``en; tr`` lines of TERMINOLOGY.md as ``en, tr`` rows (first entry per English term)."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if ";" not in line or line.startswith(("#", ":")):
            continue
        en, tr = (clean(part) for part in line.split(";", 1))
        if en and tr and en not in rows:
            rows[en] = tr
    return pd.DataFrame({"en": list(rows), "tr": list(rows.values())})


def extract(src: PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the d2l-tr checkout at ``src`` into ``(blocks, glossary)``.

    Raises:
        AnlamError: ``src`` is not a d2l-tr checkout (no chapter folders or no TERMINOLOGY.md).
    """
    src = Path(src)
    chapters = sorted(p for p in src.glob("chapter_*") if p.is_dir() and p.name not in SKIPPED_CHAPTERS)
    if not chapters or not (src / "TERMINOLOGY.md").is_file():
        raise AnlamError(f"{src}: not a d2l-tr checkout (needs chapter_*/ folders and TERMINOLOGY.md)")
    rows: list[dict] = []
    for chapter in chapters:
        for path in sorted(chapter.glob("*.md")):
            if path.stem.endswith("_origin"):
                continue
            origin = path.with_name(f"{path.stem}_origin.md")
            english = origin.read_text(encoding="utf-8") if origin.exists() else None
            rows += _section_rows(chapter.name, path.stem, path.read_text(encoding="utf-8"), english)
    blocks = pd.DataFrame(rows)
    keys = blocks["heading"].map(search_key)
    counts = Counter(keys[blocks["kind"] == "heading"])
    blocks["generic"] = keys.map(lambda key: counts[key] >= GENERIC_HEADING_COUNT)
    return blocks, _glossary(src / "TERMINOLOGY.md")


def write(src: PathLike, out: PathLike, overwrite: bool = False) -> dict[str, int]:
    """Extract ``src`` into the new folder ``out`` (blocks.parquet, glossary.csv) atomically; returns counts.

    An earlier extract in ``out`` is replaced only with ``overwrite`` (see ``anlam.io.output_folder``).
    """
    check_output_folder(out, D2L_EXTRACT, overwrite, [src])
    blocks, glossary = extract(src)
    with output_folder(out, D2L_EXTRACT, overwrite, [src]) as tmp:
        blocks.to_parquet(tmp / "blocks.parquet", index=False)
        glossary.to_csv(tmp / "glossary.csv", index=False, encoding="utf-8")
    return {"headings": int((blocks["kind"] == "heading").sum()), "paragraphs": int((blocks["kind"] == "paragraph").sum()),
            "aligned_paragraphs": int(((blocks["kind"] == "paragraph") & (blocks["en"] != "")).sum()),
            "glossary_terms": len(glossary)}


# ---------------------------------------------------------------- the shipped extract, by split


def d2l_dir() -> Path:
    """Where the extract ships inside the package."""
    return Path(str(files("anlam.data").joinpath("public", "d2l-tr")))


def chapter_split(chapter: str) -> str:
    """The split a chapter belongs to."""
    return next((split for split, names in CHAPTERS.items() if chapter in names), "train")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise AnlamError(f"d2l-tr has no split {split!r} (choose from {', '.join(SPLITS)})")


def d2l_blocks(split: str, data_dir: PathLike | None = None) -> pd.DataFrame:
    """Headings and paragraphs of the split's chapters (columns as ``extract`` writes them)."""
    _check_split(split)
    path = Path(data_dir or d2l_dir()) / "blocks.parquet"
    if not path.exists():
        raise AnlamError(f"{path}: missing; run `anlam data d2l SRC --out {path.parent}`")
    frame = pd.read_parquet(path)
    return frame[frame["chapter"].map(chapter_split) == split].reset_index(drop=True)


def d2l_glossary(split: str, data_dir: PathLike | None = None) -> pd.DataFrame:
    """Glossary terms of the split: 60/20/20 by a stable hash of the English term."""
    _check_split(split)
    frame = pd.read_csv(Path(data_dir or d2l_dir()) / "glossary.csv", keep_default_na=False)
    bucket = frame["en"].map(lambda en: int(hashlib.sha1(en.encode("utf-8")).hexdigest(), 16) % 10)
    chosen = {"train": bucket < 6, "dev": bucket.isin([6, 7]), "test": bucket >= 8}[split]
    return frame[chosen].reset_index(drop=True)


Retrieval = tuple[dict[str, str], dict[str, str], dict[str, set[str]]]


def _paragraphs(blocks: pd.DataFrame) -> pd.DataFrame:
    return blocks[blocks["kind"] == "paragraph"]


def heading_retrieval(blocks: pd.DataFrame) -> Retrieval:
    """Heading -> the paragraphs directly under it, among every paragraph of the split.

    Headings the book uses three times or more ("Özet", "Eğitim", "Model": the ``generic`` column)
    are left out: they name a kind of section, not one section.
    """
    paragraphs = _paragraphs(blocks)
    corpus = {f"p{i}": text for i, text in zip(paragraphs.index, paragraphs["tr"])}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    for (_, heading), group in paragraphs[~paragraphs["generic"]].groupby(["section", "heading"], sort=True):
        if not heading:
            continue
        key = f"h{len(queries)}"
        queries[key] = heading
        qrels[key] = {f"p{i}" for i in group.index}
    return queries, corpus, qrels


def translation_retrieval(blocks: pd.DataFrame, source: str = "en") -> Retrieval:
    """A paragraph in one language -> its aligned paragraph in the other, among all of the split's."""
    paragraphs = _paragraphs(blocks)
    aligned = paragraphs[paragraphs["en"] != ""]
    target = "tr" if source == "en" else "en"
    pool = paragraphs if target == "tr" else aligned
    corpus = {f"p{i}": text for i, text in zip(pool.index, pool[target])}
    queries = {f"q{i}": text for i, text in zip(aligned.index, aligned[source])}
    return queries, corpus, {f"q{i}": {f"p{i}"} for i in aligned.index}


def glossary_retrieval(glossary: pd.DataFrame, source: str = "en") -> Retrieval:
    """A term in one language -> its translation among all of the split's terms in the other."""
    target = "tr" if source == "en" else "en"
    queries = {f"q{i}": text for i, text in enumerate(glossary[source])}
    corpus = {f"t{i}": text for i, text in enumerate(glossary[target])}
    return queries, corpus, {f"q{i}": {f"t{i}"} for i in range(len(glossary))}


def split_first_sentence(paragraph: str) -> tuple[str, str] | None:
    """``(first sentence, the rest)`` when the paragraph has at least two sentences of some length."""
    parts = _SENTENCE_END.split(paragraph, maxsplit=1)
    if len(parts) < 2 or len(parts[0].split()) < 6 or len(parts[1].split()) < 8:
        return None
    return parts[0], parts[1]


def first_sentence_retrieval(blocks: pd.DataFrame) -> Retrieval:
    """A paragraph's first sentence -> the rest of that paragraph, among all rests of the split."""
    queries, corpus, qrels = {}, {}, {}
    for i, text in zip(_paragraphs(blocks).index, _paragraphs(blocks)["tr"]):
        split = split_first_sentence(text)
        if split:
            queries[f"q{i}"], corpus[f"p{i}"] = split
            qrels[f"q{i}"] = {f"p{i}"}
    return queries, corpus, qrels


def paragraph_clusters(blocks: pd.DataFrame, by: str = "chapter") -> tuple[list[str], list[str]]:
    """``(paragraphs, labels)`` with the chapter (or section) as label."""
    paragraphs = _paragraphs(blocks)
    return paragraphs["tr"].tolist(), paragraphs[by].tolist()


def training_pairs(max_per_kind: int | None = None, seed: int = 42) -> dict[str, pd.DataFrame]:
    """Weakly supervised ``anchor, positive`` pairs from the train chapters and train glossary terms.

    ``heading``: heading -> a paragraph under it (generic headings left out); ``section``: a
    paragraph -> the next paragraph of the same section; ``translation``: Turkish paragraph ->
    its English original; ``glossary``: English term -> Turkish term. Each kind is capped at
    ``max_per_kind`` rows (a seeded sample).
    """
    blocks = d2l_blocks("train")
    queries, corpus, qrels = heading_retrieval(blocks)
    heading = [(queries[q], corpus[d]) for q in sorted(qrels) for d in sorted(qrels[q])]
    paragraphs = _paragraphs(blocks)
    section = [(a, b) for (_, group) in paragraphs.groupby(["section", "heading"], sort=True)
               for a, b in zip(group["tr"], group["tr"].iloc[1:])]
    aligned = paragraphs[paragraphs["en"] != ""]
    glossary = d2l_glossary("train")
    kinds = {"heading": heading, "section": section, "translation": list(zip(aligned["tr"], aligned["en"])),
             "glossary": list(zip(glossary["en"], glossary["tr"]))}
    out = {}
    for name, rows in kinds.items():
        frame = pd.DataFrame(rows, columns=["anchor", "positive"]).drop_duplicates()
        if max_per_kind and len(frame) > max_per_kind:
            frame = frame.sample(n=max_per_kind, random_state=seed)
        out[name] = frame.reset_index(drop=True)
    return out
