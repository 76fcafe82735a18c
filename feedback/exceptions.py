"""Errors of the ground-truth side. Transient ones are retried; terminal ones are reported."""


class FeedbackError(Exception):
    """Base class of every error raised by ``feedback``."""


class StoreLockedError(FeedbackError):
    """Another process holds the DuckDB file open for writing."""


class StoreError(FeedbackError):
    """The DuckDB file could not be opened or migrated."""
