from __future__ import annotations

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
