"""King James Version -> World English Bible: rewrite archaic English into modern English.

Both texts are public domain and ship as SWORD zText modules in Debian (``sword-text-kjv=14.3-1``,
``sword-text-web=426.0-1``). They are read here with plain Python: a module is a verse index
(``.bzv``), a block index (``.bzs``) and zlib blocks (``.bzz``), one block per book, so the
whole Bible decompresses in about a second (reading verse by verse, as pysword does, takes
minutes). Verses are aligned by reference, found from the OSIS chapter markers: the two
modules use different versifications (KJV; NRSVA, with the deuterocanon), so index positions
differ but references agree.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from ..task import Example, require_dir

SOURCE = (
    "KJV and World English Bible, Debian sword-text-kjv=14.3-1 and sword-text-web=426.0-1 "
    "(public domain)"
)
MODULES = Path("usr/share/sword/modules/texts/ztext")
KJV, WEB = "engKJV2006eb", "engWEB2015eb"
Reference = tuple[str, int, int]  # (OSIS book, chapter, verse)

_CHAPTER_START = re.compile(r'<chapter\b[^>]*\bsID="([^"]+)\.(\d+)"')
_BOOK_START = re.compile(r'<div\b(?=[^>]*\btype="book")(?=[^>]*\bsID=)')  # not its end (eID)


def kjv_to_web(root: Path) -> list[Example]:
    """KJV verse -> WEB verse, with the verse's book under "book" (for holding out whole
    books). Verses the two texts word identically (lists of names) are left out."""
    kjv, web = verses(root, KJV), verses(root, WEB)
    pairs = []
    for reference, old in kjv.items():
        modern = _plain(web.get(reference, ""))
        archaic = _plain(old)
        if archaic and modern and archaic != modern:
            pairs.append({"input": archaic, "output": modern, "book": reference[0]})
    return pairs


def verses(root: Path, module: str) -> dict[Reference, str]:
    """Every verse of a module, as OSIS markup, by reference."""
    directory = require_dir(root / MODULES / module, f"the SWORD module {module} (Debian)")
    found: dict[Reference, str] = {}
    for testament in ("ot", "nt"):
        book, chapter, verse = "", 0, 0
        for entry in _entries(directory, testament):
            if start := _CHAPTER_START.search(entry):
                book, chapter, verse = start.group(1), int(start.group(2)), 0
            elif _BOOK_START.search(entry):
                book = ""  # a book's heading entry; its chapters follow
            elif book:
                verse += 1
                found[(book, chapter, verse)] = entry
    return found


def _entries(directory: Path, testament: str) -> list[str]:
    """The texts of a testament's index entries in order (headings and verses alike)."""
    block_index = (directory / f"{testament}.bzs").read_bytes()
    compressed = (directory / f"{testament}.bzz").read_bytes()
    blocks = []
    for offset, size, _ in struct.iter_unpack("<III", block_index):
        blocks.append(zlib.decompress(compressed[offset : offset + size]))
    entries = []
    for block, start, size in struct.iter_unpack(
        "<IIH", (directory / f"{testament}.bzv").read_bytes()
    ):
        entries.append(blocks[block][start : start + size].decode("utf-8", "replace"))
    return entries


def _plain(osis: str) -> str:
    """Verse text without markup. Footnotes become a space (WEB puts them between words)."""
    text = re.sub(r"<note\b.*?</note>", " ", osis, flags=re.S)
    text = re.sub(r"<[^>]+>", "", text).replace("\u00b6", " ")  # ¶: KJV's paragraph sign
    text = " ".join(text.split())
    return re.sub(r"\s+([,.;:!?\u2019\u201d)])", r"\1", text)
