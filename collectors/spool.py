"""A durable local spool between MQTT and InfluxDB: append, fsync, then acknowledge; drain later.

Records are line-protocol batches in segment files ``seg-NNNNNNNN.log``; each record is framed as
``length (u32) | crc32 (u32) | received_ns (u64) | payload``. A ``committed`` file (written to a
temporary file, fsync'd and renamed) holds the position up to which InfluxDB has the data.

- ``append`` returns only once the record is on disk (``os.fsync``), so a PUBACK sent after it never
  acknowledges a reading that a crash could lose.
- After a crash, reading starts again at the committed position; a torn last record (a crash in
  the middle of a write) fails its length or CRC check and is cut off — it was never acknowledged.
- Replaying records that InfluxDB already has is harmless: points are keyed by the meter's time.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct("<IIQ")
SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class Record:
    start: Position
    end: Position
    received_ns: int
    text: str


class Spool:
    """One replica's spool directory. ``append`` from the receiving thread, ``read``/``commit``
    from the writer thread."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self.committed = self._load_committed()
        segments = self._segments()
        self._segment = segments[-1] if segments else max(self.committed.segment, 1)
        self._truncate_torn(self._segment)
        self._file = self._path(self._segment).open("ab")
        self._end = Position(self._segment, self._file.tell())

    # -- files ----------------------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.directory / f"seg-{segment:08d}.log"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("seg-*.log"))

    def _load_committed(self) -> Position:
        path = self.directory / "committed"
        if not path.exists():
            return Position(1, 0)
        segment, offset = path.read_text().split()
        return Position(int(segment), int(offset))

    def _truncate_torn(self, segment: int) -> None:
        """Cut a last record that a crash left half-written."""
        path = self._path(segment)
        if not path.exists():
            return
        good = 0
        with path.open("rb") as f:
            data = f.read()
        while good + _HEADER.size <= len(data):
            length, crc, _ = _HEADER.unpack_from(data, good)
            body = data[good + _HEADER.size : good + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                break
            good += _HEADER.size + length
        if good < len(data):
            with path.open("r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    # -- writing --------------------------------------------------------------------------------------

    def append(self, text: str, received_ns: int) -> Position:
        """Write one record and fsync it; return the spool's end after it."""
        body = text.encode("utf-8")
        frame = _HEADER.pack(len(body), zlib.crc32(body), received_ns) + body
        with self._lock:
            if self._end.offset and self._end.offset + len(frame) > self.segment_bytes:
                self._roll()
            self._file.write(frame)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._end = Position(self._segment, self._end.offset + len(frame))
            self._lock.notify_all()
            return self._end

    def _roll(self) -> None:
        self._file.close()
        self._segment += 1
        self._file = self._path(self._segment).open("ab")
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name is durable too
        finally:
            os.close(directory)
        self._end = Position(self._segment, 0)

    # -- draining -------------------------------------------------------------------------------------

    def wait(self, after: Position, timeout_s: float) -> bool:
        """Wait until there is data beyond ``after``."""
        with self._lock:
            return self._lock.wait_for(lambda: self._end > after, timeout_s)

    def read(self, start: Position, max_bytes: int) -> list[Record]:
        """Records from ``start`` on, up to about ``max_bytes``, crossing into later segments. Only
        the records returned are read from disk, not the segment before them."""
        records: list[Record] = []
        size = 0
        with self._lock:
            end = self._end
        position = start
        while position < end and size < max_bytes:
            path = self._path(position.segment)
            if path.exists():
                with path.open("rb") as f:
                    limit = end.offset if position.segment == end.segment else os.fstat(f.fileno()).st_size
                    f.seek(position.offset)
                    size += self._read_records(f, path, position, limit, max_bytes - size, records)
            if position.segment == end.segment:
                break
            position = Position(position.segment + 1, 0)
        return records

    @staticmethod
    def _read_records(
        f: BinaryIO, path: Path, start: Position, limit: int, max_bytes: int, records: list[Record]
    ) -> int:
        """Append the records of ``f`` (at ``start``) before ``limit``, up to about ``max_bytes``;
        return their payload bytes."""
        offset = start.offset
        size = 0
        while offset + _HEADER.size <= limit and size < max_bytes:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            length, crc, received_ns = _HEADER.unpack(header)
            body = f.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                raise RuntimeError(f"spool record at {path}:{offset} is corrupt")
            next_offset = offset + _HEADER.size + length
            records.append(
                Record(
                    Position(start.segment, offset),
                    Position(start.segment, next_offset),
                    received_ns,
                    body.decode("utf-8"),
                )
            )
            size += length
            offset = next_offset
        return size

    def commit(self, position: Position) -> None:
        """InfluxDB has everything before ``position``: persist it and delete finished segments."""
        tmp = self.directory / "committed.tmp"
        with tmp.open("w") as f:
            f.write(f"{position.segment} {position.offset}\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.directory / "committed")
        self.committed = position
        for segment in self._segments():
            if segment < position.segment:
                self._path(segment).unlink(missing_ok=True)

    def depth_bytes(self) -> int:
        """Bytes appended but not yet committed."""
        with self._lock:
            end = self._end
        if end.segment == self.committed.segment:
            return end.offset - self.committed.offset
        total = end.offset
        for segment in range(self.committed.segment, end.segment):
            path = self._path(segment)
            total += path.stat().st_size if path.exists() else 0
        return total - self.committed.offset

    def close(self) -> None:
        with self._lock:
            self._file.close()
