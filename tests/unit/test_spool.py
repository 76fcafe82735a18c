from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from feedback.spool import Spool


def test_spool_keeps_order_survives_reopening_and_skips_a_torn_line(tmp_path):
    spool = Spool(tmp_path, max_segment_events=2)
    spool.append([("t", b"k", b'{"n": 1}'), ("t", b"k", b'{"n": 2}')])
    spool.append([("t", b"k", b'{"n": 3}')])
    with open(spool.segments()[-1], "a") as handle:
        handle.write('{"topic": "t", "key": "k", "val')  # a crash mid-write
    reopened = Spool(tmp_path)
    assert len(reopened) == 3
    drained = [(segment, records) for segment, records in reopened.drain()]
    assert [r[2] for _, records in drained for r in records] == [
        b'{"n": 1}',
        b'{"n": 2}',
        b'{"n": 3}',
    ]
    reopened.delivered(drained[0][0])
    assert len(Spool(tmp_path)) == 1


def record(n: int) -> tuple[str, bytes, bytes]:
    return ("t", b"k", f'{{"n": {n}}}'.encode())


class AppendRacesTheListing(Spool):
    """An app thread spills to the spool just as a replay lists its segments."""

    racer: threading.Thread | None = None

    def segments(self) -> list[Path]:
        if self.racer is None:
            self.racer = threading.Thread(target=self.append, args=([record(2)],))
            self.racer.start()
            self.racer.join(0.5)
        return super().segments()


def test_an_append_during_a_replay_is_never_deleted_with_a_replayed_segment(tmp_path):
    spool = AppendRacesTheListing(tmp_path)
    written = [record(1)]
    spool.append(written[:])
    replayed = []
    for n, (segment, records) in enumerate(spool.drain(), start=3):
        replayed += records
        written.append(record(n))
        spool.append([record(n)])  # the app keeps spilling while the sender replays
        spool.delivered(segment)
    assert spool.racer is not None
    spool.racer.join(5)
    written.append(record(2))
    left = [r for _, records in Spool(tmp_path).drain() for r in records]
    assert sorted(replayed + left) == sorted(written)  # each record replayed or kept, once


def test_the_spool_is_private_to_its_user_whatever_the_apps_umask(tmp_path):
    """The SDK runs inside a customer's app, under its umask: spooled events are still data
    nobody else on the machine may read."""
    previous = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool")
        spool.append([("t", b"k", b'{"n": 1}')])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
