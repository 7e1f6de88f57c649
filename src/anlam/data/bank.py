"""The ML-TR concept bank: authored Turkish ML concepts, one YAML file per subfield.

Each concept carries a definition, paraphrases that keep every fact of it, other true facts,
near-miss sentences that look the same but say something wrong, user questions, and questions
that describe the concept without naming it, as people ask when they do not know the term
(see ``bank/`` and shared/docs/CORPUS_GUIDE.md for how they are written).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml

from anlam.errors import AnlamError
from anlam.text import clean, search_key

PathLike = Path | str
MINIMUMS = {"paraphrases": 5, "facts": 2, "near_misses": 3, "questions": 3, "unnamed_questions": 2}


@dataclass(frozen=True)
class Concept:
    """One concept of the bank (all sentences already cleaned: NFC, one space)."""

    id: str
    subfield: str
    name_tr: str
    name_en: str
    variants: tuple[str, ...]
    definition: str
    paraphrases: tuple[str, ...]
    facts: tuple[str, ...]
    near_misses: tuple[str, ...]
    questions: tuple[str, ...]
    unnamed_questions: tuple[str, ...]

    @property
    def statements(self) -> tuple[str, ...]:
        """The definition and its paraphrases: sentences that all say the same thing."""
        return (self.definition, *self.paraphrases)


def bank_dir() -> Path:
    """The bank shipped inside the package."""
    return Path(str(files("anlam.data").joinpath("bank")))


def _strings(value: object, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise AnlamError(f"{where}: field {name}: expected a list of non-empty strings")
    return tuple(clean(v) for v in value)


def _concept(entry: object, path: Path, index: int) -> Concept:
    where = f"{path}: concept {index + 1}"
    if not isinstance(entry, dict):
        raise AnlamError(f"{where}: expected a mapping")
    if isinstance(entry.get("id"), str):
        where = f"{path}: concept {entry['id']}"
    for key in ("id", "subfield", "name_tr", "name_en", "definition"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise AnlamError(f"{where}: field {key}: missing or empty")
    lists = {key: _strings(entry.get(key), where, key) for key in MINIMUMS}
    for key, minimum in MINIMUMS.items():
        if len(lists[key]) < minimum:
            raise AnlamError(f"{where}: field {key}: {len(lists[key])} given, at least {minimum} needed")
    names = [entry["name_tr"], entry["name_en"], *(entry.get("variants") or [])]
    for question in lists["unnamed_questions"]:
        named = next((n for n in names if len(n) >= 3 and search_key(n) in search_key(question)), None)
        if named:
            raise AnlamError(f"{where}: field unnamed_questions: {question!r} names the concept ({named!r})")
    if entry["subfield"] != path.stem:
        raise AnlamError(f"{where}: field subfield: {entry['subfield']!r} does not match the file name {path.stem!r}")
    return Concept(
        id=entry["id"].strip(), subfield=entry["subfield"].strip(), name_tr=clean(entry["name_tr"]),
        name_en=clean(entry["name_en"]), variants=_strings(entry.get("variants") or [], where, "variants"),
        definition=clean(entry["definition"]), **lists,
    )


def load_bank(directory: PathLike | None = None) -> list[Concept]:
    """All concepts of all ``*.yaml`` files in ``directory`` (default: the shipped bank), sorted by id.

    Raises:
        AnlamError: malformed YAML, a missing field, too few sentences, or a duplicate id.
    """
    directory = Path(directory) if directory else bank_dir()
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise AnlamError(f"{directory}: no concept files (*.yaml)")
    concepts: dict[str, Concept] = {}
    for path in paths:
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise AnlamError(f"{path}: malformed YAML ({exc})") from None
        if not isinstance(entries, list):
            raise AnlamError(f"{path}: expected a list of concepts")
        for index, entry in enumerate(entries):
            concept = _concept(entry, path, index)
            if concept.id in concepts:
                raise AnlamError(f"{path}: concept {concept.id}: duplicate id (also in {concepts[concept.id].subfield})")
            concepts[concept.id] = concept
    return sorted(concepts.values(), key=lambda c: c.id)
