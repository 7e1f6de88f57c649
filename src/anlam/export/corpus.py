"""Turkish text that decides what an export keeps: vocabulary pieces, static words, int8 ranges.

The default is the text anlam ships: ML-TR train and dev sentences (machine-learning Turkish)
plus STSb-TR and TQP train and dev (general Turkish). Test splits are left out on purpose, so
the benchmark's test figures measure how an export handles text it has never seen.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence

from anlam.text import clean, tokens


def default_texts(splits: Sequence[str] = ("train", "dev")) -> list[str]:
    """ML-TR sentences and questions, STSb-TR and TQP of ``splits`` (unique, in order).

    ``splits=("train",)`` leaves the dev sets unseen, for an export whose quality is checked on them.
    """
    from anlam.data import mltr_pairs, mltr_retrieval, stsb_tr, tqp

    texts: list[str] = []
    for split in splits:
        pairs = mltr_pairs(split)
        queries, corpus, _ = mltr_retrieval(split)
        texts += [*pairs["sentence_0"], *pairs["sentence_1"], *queries.values(), *corpus.values()]
        for frame in (stsb_tr(split), tqp(split)):
            texts += [*frame["sentence_0"], *frame["sentence_1"]]
    return unique_texts(texts)


def word_list(texts: Iterable[str], min_count: int = 2, max_words: int = 50_000) -> list[str]:
    """Turkish-lower-cased words seen at least ``min_count`` times, most frequent first.

    Words with digits or a single letter are left out: the subword pieces cover them.
    """
    counts = Counter(w for text in texts for w in tokens(text) if len(w) > 1 and w.isalpha())
    return [w for w, n in counts.most_common(max_words) if n >= min_count]


def sample(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` texts drawn without replacement (all of them if there are fewer), reproducibly."""
    if len(texts) <= n:
        return list(texts)
    return random.Random(seed).sample(list(texts), n)


def unique_texts(texts: Iterable[str]) -> list[str]:
    """``texts`` cleaned (NFC, one space, ASCII apostrophes), blank and repeated ones dropped, in order.

    A user's corpus (``anlam.data.read_texts`` of each file) goes through this before an export reads it.
    """
    return list(dict.fromkeys(clean(t) for t in texts if t and t.strip()))
