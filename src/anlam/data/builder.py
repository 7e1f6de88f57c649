"""Build ML-TR's graded pairs, triplets, retrieval and clustering sets from the concept bank.

Grades and their labels (the rule, per pair; ``S`` = a concept's statements, i.e. its
definition and its paraphrases):

| grade        | pair                                                 | label |
|--------------|------------------------------------------------------|-------|
| paraphrase   | definition <-> paraphrase                            | 0.95  |
| paraphrase   | paraphrase <-> paraphrase                            | 0.90  |
| same-concept | S <-> another true fact of the concept               | 0.75 (definition) / 0.70 (paraphrase) |
| same-concept | S <-> a question the definition answers (named or not) | 0.60  |
| sibling      | S <-> S of another concept in the same subfield      | 0.40  |
| near-miss    | definition <-> near-miss                             | 0.20  |
| near-miss    | paraphrase <-> near-miss                             | 0.15  |
| unrelated    | S <-> S of a concept in another subfield             | 0.00  |

Splits are by concept (stratified by subfield), so no concept's sentences appear in two
splits; sibling and unrelated pairs are drawn inside a split, and a dev/test pair with a
sentence that also occurs in train is dropped. Everything is deterministic
for a seed.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anlam.data.bank import Concept
from anlam.io import DATA_BUILD, output_folder

logger = logging.getLogger(__name__)

PathLike = Path | str
SPLITS = ("train", "dev", "test")
GRADE_RANGES = {
    "paraphrase": (0.9, 1.0),
    "same-concept": (0.6, 0.8),
    "sibling": (0.3, 0.5),
    "near-miss": (0.1, 0.25),
    "unrelated": (0.0, 0.05),
}
SIBLING_PAIRS_PER_CONCEPT_PAIR = 3
UNRELATED_PER_CONCEPT = 20


@dataclass
class BuiltData:
    """The sets built for one split."""

    pairs: pd.DataFrame
    triplets: pd.DataFrame
    retrieval: dict
    clustering: pd.DataFrame


def split_concepts(concepts: list[Concept], seed: int = 42, fractions: tuple[float, float] = (0.15, 0.15)) -> dict[str, list[Concept]]:
    """Assign whole concepts to train/dev/test, stratified by subfield, deterministically."""
    rng = np.random.default_rng(seed)
    by_subfield: dict[str, list[Concept]] = defaultdict(list)
    for concept in sorted(concepts, key=lambda c: c.id):
        by_subfield[concept.subfield].append(concept)
    out: dict[str, list[Concept]] = {split: [] for split in SPLITS}
    for subfield in sorted(by_subfield):
        group = by_subfield[subfield]
        order = rng.permutation(len(group))
        n_dev = max(1, round(len(group) * fractions[0]))
        n_test = max(1, round(len(group) * fractions[1]))
        out["test"] += [group[i] for i in order[:n_test]]
        out["dev"] += [group[i] for i in order[n_test : n_test + n_dev]]
        out["train"] += [group[i] for i in order[n_test + n_dev :]]
    return out


def _row(a: str, b: str, label: float, grade: str, ca: Concept, cb: Concept) -> dict:
    return {"sentence_0": a, "sentence_1": b, "label": label, "grade": grade, "concept_0": ca.id, "concept_1": cb.id}


def _concept_pairs(c: Concept) -> list[dict]:
    rows = []
    for i, j in itertools.combinations(range(len(c.statements)), 2):
        rows.append(_row(c.statements[i], c.statements[j], 0.95 if i == 0 else 0.90, "paraphrase", c, c))
    for i, statement in enumerate(c.statements):
        for fact in c.facts:
            rows.append(_row(statement, fact, 0.75 if i == 0 else 0.70, "same-concept", c, c))
        for question in (*c.questions, *c.unnamed_questions):
            rows.append(_row(statement, question, 0.60, "same-concept", c, c))
        for near_miss in c.near_misses:
            rows.append(_row(statement, near_miss, 0.20 if i == 0 else 0.15, "near-miss", c, c))
    return rows


def build_pairs(concepts: list[Concept], seed: int = 42) -> pd.DataFrame:
    """All graded pairs among ``concepts`` (one split), with random sides swapped, deduplicated."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for concept in concepts:
        rows += _concept_pairs(concept)
    by_subfield: dict[str, list[Concept]] = defaultdict(list)
    for concept in concepts:
        by_subfield[concept.subfield].append(concept)
    for group in by_subfield.values():
        for a, b in itertools.combinations(group, 2):
            for _ in range(SIBLING_PAIRS_PER_CONCEPT_PAIR):
                rows.append(_row(a.statements[rng.integers(len(a.statements))], b.statements[rng.integers(len(b.statements))],
                                 0.40, "sibling", a, b))
    for concept in concepts:
        others = [c for c in concepts if c.subfield != concept.subfield]
        for k in rng.choice(len(others), size=min(UNRELATED_PER_CONCEPT, len(others)), replace=False):
            other = others[k]
            rows.append(_row(concept.statements[rng.integers(len(concept.statements))],
                             other.statements[rng.integers(len(other.statements))], 0.0, "unrelated", concept, other))
    frame = pd.DataFrame(rows)
    swap = rng.random(len(frame)) < 0.5
    frame.loc[swap, ["sentence_0", "sentence_1", "concept_0", "concept_1"]] = frame.loc[
        swap, ["sentence_1", "sentence_0", "concept_1", "concept_0"]
    ].to_numpy()
    key = frame[["sentence_0", "sentence_1"]].apply(lambda r: tuple(sorted(r)), axis=1)
    frame = frame[~key.duplicated()]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def build_triplets(concepts: list[Concept], seed: int = 42) -> pd.DataFrame:
    """(anchor, positive, hard negative) for contrastive training; the positive is the definition.

    A question (named or not) gets negatives it can rule out: a sibling concept's definition and
    one from another subfield. A near-miss is no such negative for a question ("sgd nedir" does
    not say which fact is true), so near-misses go only with paraphrase anchors, statement
    against statement, where the changed fact is there to be read.
    """
    rng = np.random.default_rng(seed)
    by_subfield: dict[str, list[Concept]] = defaultdict(list)
    for concept in concepts:
        by_subfield[concept.subfield].append(concept)
    rows = []
    for c in concepts:
        siblings = [s for s in by_subfield[c.subfield] if s.id != c.id]
        others = [o for o in concepts if o.subfield != c.subfield]
        for question in (*c.questions, *c.unnamed_questions):
            for pool in (siblings, others):
                if pool:
                    rows.append({"anchor": question, "positive": c.definition,
                                 "negative": pool[rng.integers(len(pool))].definition})
        for paraphrase, near_miss in zip(c.paraphrases, itertools.cycle(c.near_misses)):
            rows.append({"anchor": paraphrase, "positive": c.definition, "negative": near_miss})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def build_retrieval(concepts: list[Concept]) -> dict:
    """Questions -> the definition that answers them, among the definitions of every concept of the split.

    Query ids say the kind: ``ID:qK`` names the concept, ``ID:uK`` describes it without naming it.
    Near-misses are not in the corpus: a question cannot tell a definition from its flipped-fact
    twin, so ranking them is no test of retrieval (the pair tasks test that).
    """
    queries, corpus, qrels = {}, {}, {}
    for c in concepts:
        corpus[f"{c.id}:def"] = c.definition
        for prefix, questions in (("q", c.questions), ("u", c.unnamed_questions)):
            for k, question in enumerate(questions):
                queries[f"{c.id}:{prefix}{k}"] = question
                qrels[f"{c.id}:{prefix}{k}"] = [f"{c.id}:def"]
    return {"queries": queries, "corpus": corpus, "qrels": qrels}


def build_clustering(concepts: list[Concept]) -> pd.DataFrame:
    """Sentences labelled with their subfield: definitions, one paraphrase and the facts."""
    rows = []
    for c in concepts:
        for sentence in (c.definition, c.paraphrases[0], *c.facts):
            rows.append({"sentence": sentence, "label": c.subfield, "concept": c.id})
    return pd.DataFrame(rows)


def build_all(concepts: list[Concept], seed: int = 42) -> dict[str, BuiltData]:
    """Every set for every split."""
    splits = split_concepts(concepts, seed)
    built = {
        split: BuiltData(
            pairs=build_pairs(members, seed),
            triplets=build_triplets(members, seed),
            retrieval=build_retrieval(members),
            clustering=build_clustering(members),
        )
        for split, members in splits.items()
    }
    # a sentence written for two concepts (a near-miss that is another concept's definition)
    # must not carry training text into dev or test: drop those evaluation pairs
    train_sentences = set(built["train"].pairs["sentence_0"]) | set(built["train"].pairs["sentence_1"])
    for split in ("dev", "test"):
        pairs = built[split].pairs
        seen = pairs["sentence_0"].isin(train_sentences) | pairs["sentence_1"].isin(train_sentences)
        built[split].pairs = pairs[~seen].reset_index(drop=True)
    return built


def write_all(built: dict[str, BuiltData], out_dir: PathLike, concepts: list[Concept], seed: int,
              overwrite: bool = False, inputs: Sequence[PathLike | None] = ()) -> Path:
    """Write the sets, the datasheet and its label histogram into ``out_dir`` atomically (``anlam.io.output_folder``)."""
    out_dir = Path(out_dir)
    with output_folder(out_dir, DATA_BUILD, overwrite, inputs) as tmp:
        for split, data in built.items():
            data.pairs.to_parquet(tmp / f"pairs-{split}.parquet", index=False)
            data.triplets.to_parquet(tmp / f"triplets-{split}.parquet", index=False)
            data.clustering.to_parquet(tmp / f"clustering-{split}.parquet", index=False)
            (tmp / f"retrieval-{split}.json").write_text(json.dumps(data.retrieval, ensure_ascii=False, indent=1) + "\n",
                                                         encoding="utf-8")
        stats = datasheet_stats(built, concepts, seed)
        (tmp / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        _label_histogram_png(built, tmp / "label-histogram.png")
        (tmp / "README.md").write_text(render_datasheet(stats), encoding="utf-8")
    return out_dir


def datasheet_stats(built: dict[str, BuiltData], concepts: list[Concept], seed: int) -> dict:
    """Counts per split, grade and subfield; label histogram; sentence lengths."""
    all_pairs = pd.concat([d.pairs.assign(split=s) for s, d in built.items()], ignore_index=True)
    subfield_of = {c.id: c.subfield for c in concepts}
    all_pairs["subfield"] = all_pairs["concept_0"].map(subfield_of)
    sentences = [s for c in concepts for s in (*c.statements, *c.facts, *c.near_misses, *c.questions, *c.unnamed_questions)]
    words = np.array([len(s.split()) for s in sentences])
    counts, edges = np.histogram(all_pairs["label"], bins=20, range=(0, 1))
    concept_counts = Counter(c.subfield for c in concepts)
    return {
        "seed": seed,
        "concepts": len(concepts),
        "subfields": len(concept_counts),
        "sentences": len(sentences),
        "pairs": len(all_pairs),
        "pairs_per_split": {s: len(d.pairs) for s, d in built.items()},
        "concepts_per_split": {s: int(d.clustering["concept"].nunique()) for s, d in built.items()},
        "triplets_per_split": {s: len(d.triplets) for s, d in built.items()},
        "retrieval_per_split": {s: {"queries": len(d.retrieval["queries"]), "corpus": len(d.retrieval["corpus"])}
                                for s, d in built.items()},
        "clustering_per_split": {s: len(d.clustering) for s, d in built.items()},
        "pairs_per_grade": {g: int(n) for g, n in all_pairs["grade"].value_counts().sort_index().items()},
        "per_subfield": {
            sub: {"concepts": concept_counts[sub],
                  **{g: int(n) for g, n in all_pairs[all_pairs["subfield"] == sub]["grade"].value_counts().sort_index().items()}}
            for sub in sorted(concept_counts)
        },
        "label_histogram": {f"{edges[i]:.2f}-{edges[i + 1]:.2f}": int(c) for i, c in enumerate(counts) if c},
        "sentence_words": {"mean": round(float(words.mean()), 1), "median": float(np.median(words)),
                           "p95": float(np.percentile(words, 95)), "min": int(words.min()), "max": int(words.max())},
    }


def _label_histogram_png(built: dict[str, BuiltData], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for split, data in built.items():
        ax.hist(data.pairs["label"], bins=20, range=(0, 1), alpha=0.6, label=f"{split} ({len(data.pairs):,})")
    ax.set_xlabel("label")
    ax.set_ylabel("pairs")
    ax.set_title("ML-TR pair labels per split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_datasheet(stats: dict) -> str:
    """The datasheet (README.md beside the data) from the measured statistics."""
    grades = "\n".join(f"| {g} | {lo:.2f}-{hi:.2f} | {stats['pairs_per_grade'].get(g, 0):,} |"
                       for g, (lo, hi) in GRADE_RANGES.items())
    sub_rows = "\n".join(
        f"| {sub} | {row['concepts']} | " + " | ".join(f"{row.get(g, 0):,}" for g in GRADE_RANGES) + " |"
        for sub, row in stats["per_subfield"].items()
    )
    splits = "\n".join(
        f"| {s} | {stats['concepts_per_split'][s]} | {stats['pairs_per_split'][s]:,} | {stats['triplets_per_split'][s]:,} | "
        f"{stats['retrieval_per_split'][s]['queries']} / {stats['retrieval_per_split'][s]['corpus']} | {stats['clustering_per_split'][s]} |"
        for s in SPLITS
    )
    length = stats["sentence_words"]
    return f"""# ML-TR: Turkish machine-learning pairs (datasheet)

Built by `anlam data build` (seed {stats['seed']}) from the authored concept bank in
`src/anlam/data/bank/`: {stats['concepts']} concepts in {stats['subfields']} subfields,
{stats['sentences']:,} authored sentences, {stats['pairs']:,} distinct graded pairs.

## How it was written
Every sentence of the bank was written by hand for anlam, in Turkish, by the project's authors
(one file per subfield) and read a second time by another author for correctness and natural
Turkish; nothing was copied from an outside source or generated from templates. Each concept has
a definition, at least five paraphrases that keep every fact of it, at least two other true
facts, at least three near-misses (a sibling term swapped in, a reversed direction, a wrong object,
a negation, a wrong number) and at least three questions as users type them (some without
Turkish letters or a question mark), and at least two questions that describe the concept
without naming it, as people ask when they do not know the term. Code builds only the pairs.

## Files (per split: train, dev, test)
- `pairs-SPLIT.parquet`: `sentence_0, sentence_1, label` (the ml-paraphrase-tr schema) plus
  `grade, concept_0, concept_1`;
- `triplets-SPLIT.parquet`: `anchor, positive, negative` (a question with another concept's
  definition as negative, or a paraphrase with a near-miss);
- `retrieval-SPLIT.json`: `queries` (ids `ID:qK` name the concept, `ID:uK` do not), `corpus`
  (the split's definitions), `qrels`;
- `clustering-SPLIT.parquet`: `sentence, label` (label = subfield), `concept`;
- `stats.json` (every number below), `label-histogram.png`.

## Grades
| grade | label range | pairs |
|---|---|---|
{grades}

The exact rule: definition-paraphrase 0.95, paraphrase-paraphrase 0.90; statement-fact 0.75
(definition) or 0.70 (paraphrase), statement-question 0.60; sibling statements 0.40; near-miss
0.20 (definition) or 0.15 (paraphrase); statements of concepts in other subfields 0.00.

## Splits
Whole concepts are assigned to one split (stratified by subfield), so no concept is in two splits.

| split | concepts | pairs | triplets | retrieval queries / corpus | clustering sentences |
|---|---|---|---|---|---|
{splits}

## Per subfield (pairs by grade, all splits)
| subfield | concepts | {' | '.join(GRADE_RANGES)} |
|---|---|{'---|' * len(GRADE_RANGES)}
{sub_rows}

## Sentence length (words)
mean {length['mean']}, median {length['median']}, 95th percentile {length['p95']}, min {length['min']}, max {length['max']}.

![label histogram](label-histogram.png)

## Licence
CC BY 4.0, the anlam authors. The text is original; cite anlam when you use it.
"""
