"""Customer questions to a Swedish construction company, answered from its FAQ (PyPI
``zaragoza-construction-faq==1.2.1``, CC BY 4.0, a Flywheel dependency already).

The FAQ has 503 questions, each in Swedish and in English. A question-answering task needs
400 + 200 + 200 examples, so both languages are used: a customer may ask in either, and the
reply is in the question's language. Each example carries a "group": its question id, or
the first id of any question worded the same (nine questions appear under two ids), so a
question, its translation and its duplicates are never split between training and evaluation.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

from ..task import Example, ZooDataMissing

SOURCE = "zaragoza-construction-faq==1.2.1 on PyPI (CC BY 4.0), English and Swedish"
FILES = ("faq-en.jsonl", "faq.jsonl")  # English, Swedish


def questions_and_answers() -> list[Example]:
    """Question -> answer in both languages, each with its "group" (see above)."""
    data = _data_dir()
    examples = []
    for name in FILES:
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("q") and row.get("a"):
                examples.append(
                    {"input": row["q"].strip(), "output": row["a"].strip(), "id": row["id"]}
                )
    group_of = _same_question_groups(examples)
    return [{**e, "group": group_of[e["id"]]} for e in examples]


def _same_question_groups(examples: list[Example]) -> dict[str, str]:
    """id -> one id standing for every id linked to it by an identically worded question."""
    parent: dict[str, str] = {}

    def root(question_id: str) -> str:
        while parent.get(question_id, question_id) != question_id:
            question_id = parent[question_id]
        return question_id

    first_asked_by: dict[str, str] = {}
    for example in examples:
        wording = " ".join(example["input"].lower().split())
        first = first_asked_by.setdefault(wording, example["id"])
        parent[root(example["id"])] = root(first)
    return {e["id"]: root(e["id"]) for e in examples}


def _data_dir() -> Path:
    spec = find_spec("zaragoza_construction_faq")
    if spec is None or not spec.submodule_search_locations:
        raise ZooDataMissing(
            "the construction FAQ (PyPI zaragoza-construction-faq) is not installed: "
            "make install (or pip install zaragoza-construction-faq==1.2.1) installs it"
        )
    return Path(spec.submodule_search_locations[0]) / "data"
