"""Unit tests of logmr.ship.spool: the index a ship keeps beside its spool, read back after
a crash (torn lines included), and adopting what a dead ship left."""

from __future__ import annotations

import os
from pathlib import Path

from logmr.ship.spool import SpoolFile, orphans

RUN = "0123456789abcdef01234567"


def spool_with(tmp_path: Path, data: bytes, index: bytes) -> SpoolFile:
    spool = SpoolFile.create(str(tmp_path), RUN, 1)
    spool.append(data)
    with open(spool.index_path, "ab") as f:
        f.write(index)
    return spool


def test_the_index_says_where_batches_were_cut_and_how_far_they_were_queued(
        tmp_path: Path) -> None:
    spool = spool_with(tmp_path, b"a\n" * 10, b"")
    for end in (4, 8, 12):
        spool.record_cut(end)
    spool.record_ack(4)
    state = spool.state()
    assert (state.cuts, state.acked) == ([8, 12], 4)  # the first batch is queued
    spool.record_ack(12)
    assert (spool.state().cuts, spool.state().acked) == ([], 12)


def test_a_torn_or_garbled_index_line_is_ignored(tmp_path: Path) -> None:
    # a ship killed in the middle of writing its index leaves a line with no newline
    spool = spool_with(tmp_path, b"x\n" * 10,
                       b"C 6\nA 2\nnonsense\nC x\nC 4\nZ 9\nC 10 extra\nC 14\nA 1\nC 30\nC 16")
    state = spool.state()
    assert state.acked == 2  # the highest acknowledgement counts
    # 4 goes back before 6 and is dropped; 30 lies past the data; "C 16" is torn
    assert state.cuts == [6, 14]


def test_a_missing_index_means_nothing_was_cut_or_queued(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, b"y\n", b"")
    os.unlink(spool.index_path)
    assert (spool.state().cuts, spool.state().acked) == ([], 0)


def test_a_dead_ships_files_are_adopted_and_a_live_ones_are_not(tmp_path: Path) -> None:
    live = SpoolFile.create(str(tmp_path), RUN, 1)
    live.append(b"live\n")
    dead = SpoolFile.create(str(tmp_path), RUN, 2)
    dead.append(b"one\ntwo\n")
    dead.record_cut(4)
    dead.close()  # kill -9: its lock goes with it, its files stay
    # a ship that died while creating a file leaves a temporary name, with no data
    (tmp_path / f".{RUN}.0003.spool.tmp").write_bytes(b"")
    (tmp_path / "not-a-spool.spool").write_bytes(b"stray\n")  # not a name ship makes
    found = orphans(str(tmp_path))
    try:
        assert [(s.run, s.seq) for s in found] == [(RUN, 2)]
        adopted = found[0]
        assert adopted.read(0, adopted.size) == b"one\ntwo\n"
        assert adopted.state().cuts == [4]
        # the same batch ids as the dead ship would have used: a batch sent twice is one
        assert adopted.batch_id(0) == dead.batch_id(0)
        assert not (tmp_path / f".{RUN}.0003.spool.tmp").exists()
        assert orphans(str(tmp_path)) == []  # now held by us, and the live one by its ship
    finally:
        for spool in (*found, live):
            spool.close()


def test_a_finished_file_removed_meanwhile_is_not_adopted(tmp_path: Path) -> None:
    spool = SpoolFile.create(str(tmp_path), RUN, 1)
    path = spool.path
    spool.remove()
    assert SpoolFile.adopt(path) is None
