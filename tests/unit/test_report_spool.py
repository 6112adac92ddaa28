"""A report's spool (:mod:`logmr.store.spool`): frames kept cut by hash read back by range,
every row once, from the files of that range only."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from logmr.errors import LogmrError
from logmr.mapfn.partial import hash_in
from logmr.reduce.ranges import hash_ranges
from logmr.store import spool as spool_module
from logmr.store.spool import Spool

QUERY = "0123456789abcdef" * 2


def hashes(n: int, seed: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    return pl.DataFrame({"vh": pl.Series([rnd.randrange(1 << 63) for _ in range(n)],
                                         dtype=pl.Int64),
                         "n": pl.Series(range(n), dtype=pl.Int64)})


@pytest.mark.parametrize("rows, parts, ranges", [(0, 1, 1), (50, 1, 3), (5000, 1, 7),
                                                 (3000, 4, 12), (20_000, 2, 1)])
def test_every_row_comes_back_once_in_the_range_that_holds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, parts: int,
        ranges: int) -> None:
    monkeypatch.setattr(spool_module, "FILE_ROWS", 256)
    spool = Spool(str(tmp_path))
    kept = [hashes(rows, seed) for seed in range(parts)]
    for i, frame in enumerate(kept):
        spool.put_cut(QUERY, "v", frame, pl.col("vh"), i)
    whole = pl.concat(kept)
    got = []
    for lo, hi in hash_ranges(ranges):
        read = spool.get_cut(QUERY, "v", lo, hi)
        assert read.schema == whole.schema
        inside = read.filter(hash_in("vh", lo, hi))
        got.append(inside)
        if ranges > 1 and rows >= 1000:  # only that range's files were read
            assert read.height < 2 * whole.height / ranges + parts * 2 * 256
    assert sorted(pl.concat(got).rows()) == sorted(whole.rows())


def test_a_range_of_no_rows_has_the_frame_columns(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "FILE_ROWS", 1)  # four files of a quarter each
    spool = Spool(str(tmp_path))
    frame = pl.DataFrame({"vh": [1, 2, 3, (1 << 63) - 1]}, schema={"vh": pl.Int64})
    spool.put_cut(QUERY, "v", frame, pl.col("vh"))
    empty = spool.get_cut(QUERY, "v", 1 << 61, 1 << 62)
    assert empty.height == 0 and empty.schema == frame.schema


def test_names_that_share_a_beginning_are_kept_apart(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.put_cut(QUERY, "t_referrers", hashes(10, 1), pl.col("vh"))
    spool.put_cut(QUERY, "t_referring_sites", hashes(20, 2), pl.col("vh"))
    assert spool.get_cut(QUERY, "t_referrers").height == 10
    assert spool.get_cut(QUERY, "t_referring_sites").height == 20


def test_a_spool_that_is_gone_says_to_run_the_report_again(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.put_cut(QUERY, "v", hashes(10, 1), pl.col("vh"))
    spool.drop(QUERY)
    with pytest.raises(LogmrError, match="run the report again"):
        spool.get_cut(QUERY, "v", 0, None)


def test_the_spool_and_its_files_are_private(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    Spool(str(root)).put_cut(QUERY, "v", hashes(10, 1), pl.col("vh"))
    for path in [root, *root.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path
