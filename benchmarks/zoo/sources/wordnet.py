"""Two tasks from WordNet 3.0 (Debian ``wordnet-base=1:3.0-37``, Princeton's WordNet licence:
use, copy, modify and distribute for any purpose, keeping the notice).

- noun supersense: "headword: definition" -> the sense's lexicographer file (animal, food,
  person, ...), eight labels, imbalanced about 6:1.
- definition: a word and an example sentence using it -> the gloss of that sense (lower-case,
  genus + differentia, WordNet's own style).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..task import Example, require_dir

SOURCE = "WordNet 3.0, Debian wordnet-base=1:3.0-37 (WordNet licence, permissive)"
PACKAGE_PATH = Path("usr/share/wordnet")
# The lexicographer files of nouns, numbered 3..28 in every data.noun line (lexnames(5WN)).
NOUN_LEXNAMES = [
    "Tops",
    "act",
    "animal",
    "artifact",
    "attribute",
    "body",
    "cognition",
    "communication",
    "event",
    "feeling",
    "food",
    "group",
    "location",
    "motive",
    "object",
    "person",
    "phenomenon",
    "plant",
    "possession",
    "process",
    "quantity",
    "relation",
    "shape",
    "state",
    "substance",
    "time",
]
FIRST_NOUN_LEXFILE = 3
SUPERSENSES = ("animal", "plant", "food", "artifact", "person", "location", "body", "substance")


@dataclass(frozen=True, slots=True)
class Synset:
    words: tuple[str, ...]
    lexname: str
    definition: str
    examples: tuple[str, ...]


def noun_supersense(root: Path, labels: tuple[str, ...] = SUPERSENSES) -> list[Example]:
    """ "headword: definition" -> supersense, for every noun synset filed under ``labels``."""
    return [
        {"input": f"{s.words[0]}: {s.definition}", "output": s.lexname}
        for s in synsets(root, "noun")
        if s.lexname in labels and s.definition
    ]


def definition(root: Path, pos: str = "noun") -> list[Example]:
    """ "Word: w\\nExample: sentence" -> the gloss, for synsets with an example sentence that
    contains one of the synset's words (so the example says which sense is meant)."""
    examples = []
    for s in synsets(root, pos):
        hit = _example_using_a_word(s)
        if s.definition and hit:
            word, sentence = hit
            sentence = sentence.split('"')[0].strip()  # drop '"- Author' attributions
            examples.append({"input": f"Word: {word}\nExample: {sentence}", "output": s.definition})
    return examples


def _example_using_a_word(synset: Synset) -> tuple[str, str] | None:
    """(word, example sentence) for the first example that contains one of the words."""
    return next(
        ((w, e) for e in synset.examples for w in synset.words if w.lower() in e.lower()), None
    )


def synsets(root: Path, pos: str) -> Iterator[Synset]:
    """Every synset of data.<pos>: ``offset lexfile ss_type w_cnt word lex_id ... | gloss``."""
    path = require_dir(root / PACKAGE_PATH, "WordNet (Debian wordnet-base)") / f"data.{pos}"
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("  "):  # the licence header
                continue
            yield _parse(line, pos)


def _parse(line: str, pos: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    lexfile = int(fields[1])
    lexname = NOUN_LEXNAMES[lexfile - FIRST_NOUN_LEXFILE] if pos == "noun" else str(lexfile)
    count = int(fields[3], 16)
    words = tuple(
        re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)
    )
    parts = [p.strip() for p in gloss.strip().split(";")]
    definitions = [p for p in parts if p and not p.startswith('"')]
    examples = tuple(p.strip('"') for p in parts if p.startswith('"'))
    return Synset(words, lexname, "; ".join(definitions), examples)
