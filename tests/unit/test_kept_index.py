"""Catching up from the change log: a record stamped before the watermark that commits late is
still applied, and a stream quiet for longer than the margin is read only after its watermark."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from chalicelib.services.kept_index import CLOCK_SKEW, MARGIN, Held, KeptIndexes, _read_from
from chalicelib.store.changes import TAGS_STREAM, Change

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=timezone.utc)


def at(moment: datetime, suffix: str = "0000") -> str:
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{suffix}"


class FakeLog:
    """The change log's two reads over records in memory; counts the records each read returns."""

    def __init__(self) -> None:
        self.records: list[Change] = []
        self.returned = 0

    def since(self, stream: str, after: str) -> list[Change]:
        found = sorted((r for r in self.records if r.stream == stream and r.at > after), key=lambda r: r.at)
        self.returned += len(found)
        return found

    def latest(self, stream: str) -> str | None:
        return max((r.at for r in self.records if r.stream == stream), default=None)


class Index:
    def __init__(self) -> None:
        self.applied: list[str] = []

    def snapshot(self, watermarks):
        return b""

    def meta(self):
        return {}


class Kept(KeptIndexes[Index]):
    layout = "test"

    def _own_stream(self, scope):
        return f"P#{scope}"

    def _open(self, snapshot):
        return Index()

    def _build_index(self, scope):
        return Index()

    def _apply(self, scope, index, records):
        index.applied += [record.at for record in records]


def kept(log: FakeLog, clock: list[datetime], monkeypatch) -> Kept:
    import chalicelib.services.kept_index as module

    monkeypatch.setattr(module, "stamp", lambda: at(clock[0], "ffff"))
    return Kept(log, None, tag_list=object(), trash=None)  # type: ignore[arg-type]


def test_the_read_starts_a_margin_back_until_a_read_has_settled_it():
    held = Held(Index(), {"s": at(T0)})
    assert _read_from(held, "s") == (T0 - MARGIN).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    held.read_at = at(T0 + CLOCK_SKEW + timedelta(seconds=4))
    assert _read_from(held, "s") == (T0 - timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    held.read_at = at(T0 + MARGIN + CLOCK_SKEW + timedelta(seconds=30))
    assert _read_from(held, "s") == at(T0)


def test_a_record_committing_late_is_applied_and_a_quiet_stream_is_not_read_again(monkeypatch):
    log, clock = FakeLog(), [T0]
    index = kept(log, clock, monkeypatch)
    index.current("p")
    # Given a busy stream: 500 records in the last seconds, read by a catch-up
    log.records += [Change(TAGS_STREAM, at(T0 + timedelta(milliseconds=10 * n), f"{n:04x}")) for n in range(500)]
    clock[0] = T0 + timedelta(seconds=6)
    assert len(index.current("p").applied) == 500
    # When a record stamped before the watermark commits late, it is applied on the next call
    log.records.append(Change(TAGS_STREAM, at(T0 + timedelta(seconds=3), "late")))
    clock[0] = T0 + timedelta(seconds=7)
    assert index.current("p").applied[-1] == at(T0 + timedelta(seconds=3), "late")
    # And once a read started more than the margin after them, those records are not read again
    clock[0] = T0 + timedelta(seconds=30)
    index.current("p")
    log.returned = 0
    clock[0] = T0 + timedelta(seconds=31)
    index.current("p")
    assert log.returned == 0
    assert len(index.current("p").applied) == 501
