"""FLYWHEEL_HOME for the commands that write under it (up, serve, train)."""

from __future__ import annotations

from feedback.exceptions import FeedbackError
from feedback.private_files import private_home
from services.cli.local_store import fail
from services.settings import Settings


def open_private_home(settings: Settings) -> None:
    """Create the home 0700 and make this process's files private, before logging or
    anything else writes there; a home that cannot be made exits 2 with the reason."""
    try:
        private_home(settings.home)
    except FeedbackError as error:
        raise fail(str(error), 2) from error
