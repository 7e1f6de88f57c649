"""Turkish text normalisation: the one place that knows how Turkish is really typed.

Python's ``str.lower()`` maps ``I`` to ``i`` and ``İ`` to ``i̇`` (i + combining dot);
Turkish needs ``I``->``ı`` and ``İ``->``i``. Users also type without Turkish letters
("asiri ogrenme" for "aşırı öğrenme"), with ASCII or typographic apostrophes in
suffixes ("GPU'lar", "GPU’lar") and in decomposed Unicode. Search, data preparation,
training augmentation and the apps all call the functions here.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "nfc",
    "clean",
    "tr_lower",
    "tr_upper",
    "tr_casefold",
    "ascii_fold",
    "search_key",
    "tokens",
]

_COMBINING_DOT_ABOVE = "\u0307"
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_FOLD = str.maketrans("çğıöşüâîûÇĞİÖŞÜÂÎÛ", "cgiosuaiuCGIOSUAIU")
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+(?:'\w+)*")


def nfc(text: str) -> str:
    """NFC-compose ``text`` and drop a stray combining dot above.

    A combining dot above survives NFC after letters that have no precomposed dotted form
    (for example after ``i`` when text was lower-cased by a non-Turkish ``lower()``:
    "i̇" = i + U+0307). It never carries meaning in Turkish, so it is removed there.
    ``I`` + U+0307 composes to ``İ`` first and is kept as that letter.
    """
    composed = unicodedata.normalize("NFC", text)
    if _COMBINING_DOT_ABOVE in composed:
        composed = composed.replace(_COMBINING_DOT_ABOVE, "")
    return composed


def clean(text: str) -> str:
    """NFC, typographic apostrophes to ASCII ``'``, whitespace runs to one space, stripped."""
    return _WS.sub(" ", nfc(text).translate(_APOSTROPHES)).strip()


def tr_lower(text: str) -> str:
    """Lower-case with Turkish rules: ``I``->``ı``, ``İ``->``i``; everything else as Unicode says."""
    text = nfc(text).replace("I", "ı").replace("İ", "i")
    return nfc(text.lower())


def tr_upper(text: str) -> str:
    """Upper-case with Turkish rules: ``i``->``İ``, ``ı``->``I``."""
    text = nfc(text).replace("i", "İ").replace("ı", "I")
    return nfc(text.upper())


def tr_casefold(text: str) -> str:
    """Caseless-matching key with Turkish rules (``tr_lower`` then Unicode casefold).

    Casefolding after the Turkish mapping keeps ``ı`` and ``i`` apart, and also folds
    ``ß``->``ss`` and the like for the foreign words that appear in technical text.
    """
    return nfc(tr_lower(text).casefold())


def ascii_fold(text: str) -> str:
    """Replace Turkish letters with their ASCII look-alikes (ç->c, ğ->g, ı->i, ö->o, ş->s, ü->u).

    Users who type without Turkish letters produce exactly this; matching on the folded
    form of both sides makes "asiri ogrenme" find "aşırı öğrenme".
    """
    return nfc(text).translate(_FOLD)


def search_key(text: str) -> str:
    """The form under which two spellings of the same Turkish text compare equal.

    Clean, Turkish-casefold, ASCII-fold: "AŞIRI Öğrenme", "aşırı öğrenme" and
    "asiri ogrenme" all give "asiri ogrenme".
    """
    return ascii_fold(tr_casefold(clean(text)))


def tokens(text: str) -> list[str]:
    """Word tokens of ``text``, Turkish-lower-cased, with apostrophe suffixes dropped.

    "GPU'ların belleği" -> ["gpu", "belleği"]: a suffix after an apostrophe is pure
    inflection of a name or abbreviation, so the lexical index sees the bare "gpu".
    """
    return [word.split("'", 1)[0] for word in _WORD.findall(tr_lower(clean(text)))]
