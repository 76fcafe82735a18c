"""An adapter's directory on disk: where it lives and whether its files still match its id.

Adapter ids are content hashes, so checking a directory needs only hashlib: this module
stays free of torch, and the registry and the CLI can verify an adapter without loading it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class AdapterLoadError(Exception):
    """An adapter cannot be served (missing, corrupted); the current champion stays."""


def adapter_content_hash(directory: Path) -> str:
    """sha256 over the weights and the adapter config: equal ids mean equal adapters."""
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


def adapter_dir(adapters_dir: Path, adapter_id: str) -> Path:
    """Where an adapter lives; an id that is not a plain name (``..``, ``/``) is refused, so
    no adapter id can point outside the adapter store."""
    if not isinstance(adapter_id, str) or not ADAPTER_ID.fullmatch(adapter_id):
        raise ValueError(f"{adapter_id!r} is not an adapter id (letters, digits, '-', '_')")
    return adapters_dir / adapter_id


def verify_adapter(directory: Path) -> None:
    """Refuse an adapter whose files no longer match its name (corrupted or truncated)."""
    for name in ADAPTER_FILES:
        if not (directory / name).is_file():
            raise ValueError(f"adapter {directory.name} is missing {name}")
    actual = adapter_content_hash(directory)
    if actual != directory.name:
        raise ValueError(
            f"adapter {directory.name} is corrupted: its files hash to {actual}; it was not loaded"
        )
