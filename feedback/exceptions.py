"""Errors of the ground-truth side. Transient ones are retried; terminal ones are reported."""


class FeedbackError(Exception):
    """Base class of every error raised by ``feedback``."""


class StoreLockedError(FeedbackError):
    """Another process holds the DuckDB file open for writing."""


class StoreError(FeedbackError):
    """The DuckDB file could not be opened or migrated."""


class InvalidEventError(FeedbackError, ValueError):
    """An event built by the SDK failed validation; the message names the field."""
