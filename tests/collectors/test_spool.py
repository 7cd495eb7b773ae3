"""The spool: nothing acknowledged is ever lost, whatever point a crash hits."""

from __future__ import annotations

from collectors.spool import Position, Spool


def drain(spool: Spool) -> list[str]:
    return [r.text for r in spool.read(spool.committed, 10**9)]


class TestSpool:
    def test_append_read_commit(self, tmp_path):
        """Records come back in order; after a commit only the rest is read."""
        spool = Spool(tmp_path)
        spool.append("a 1", 1)
        end_b = spool.append("b 2", 2)
        spool.append("c 3", 3)
        assert drain(spool) == ["a 1", "b 2", "c 3"]
        spool.commit(end_b)
        assert drain(spool) == ["c 3"]
        assert spool.depth_bytes() == 16 + 3
        spool.close()

    def test_replay_after_crash(self, tmp_path):
        """A spool reopened after a crash (no close) reads everything not committed, once."""
        spool = Spool(tmp_path)
        first = spool.append("a 1", 1)
        spool.append("b 2", 2)
        spool.commit(first)
        reopened = Spool(tmp_path)  # the first instance was not closed: as after a kill -9
        assert drain(reopened) == ["b 2"]
        spool.close()
        reopened.close()

    def test_torn_record_is_cut(self, tmp_path):
        """Half a record at the end (a crash inside write) is cut off on reopen; whole ones stay."""
        spool = Spool(tmp_path)
        spool.append("a 1", 1)
        spool.append("b 2", 2)
        spool.close()
        segment = next(tmp_path.glob("seg-*.log"))
        segment.write_bytes(segment.read_bytes()[:-2])
        reopened = Spool(tmp_path)
        assert drain(reopened) == ["a 1"]
        reopened.append("c 3", 3)
        assert drain(reopened) == ["a 1", "c 3"]
        reopened.close()

    def test_segments_roll_and_are_deleted(self, tmp_path):
        """Small segments roll over; committing past a segment deletes it."""
        spool = Spool(tmp_path, segment_bytes=64)
        ends = [spool.append(f"line {i}", i) for i in range(10)]
        assert len(list(tmp_path.glob("seg-*.log"))) > 2
        assert drain(spool) == [f"line {i}" for i in range(10)]
        spool.commit(ends[-1])
        assert len(list(tmp_path.glob("seg-*.log"))) == 1
        assert drain(spool) == []
        spool.close()
        again = Spool(tmp_path)
        assert again.committed == ends[-1] and isinstance(ends[-1], Position)
        again.close()
