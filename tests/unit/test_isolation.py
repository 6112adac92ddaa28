"""The suite's own guard: each test runs as a user of its own, so a developer's config,
secret or spool can never leak into it (the autouse fixture in tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logmr.client.cluster import default_data_dir
from logmr.ship.spool import default_spool_dir


def test_each_test_has_a_home_and_no_logmr_variables_of_its_own(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    assert Path.home().is_relative_to(base)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        assert Path(os.environ[name]).is_relative_to(Path.home())
    assert [n for n in os.environ if n.startswith("LOGMR_")] == ["LOGMR_SPOOL_DIR"]
    # where ship would look for a spool to adopt (root's default is the machine's own
    # /var/spool/logmr), and where a local cluster is kept
    spool = os.environ["LOGMR_SPOOL_DIR"] if os.geteuid() == 0 else default_spool_dir()
    assert Path(spool).is_relative_to(Path.home())
    assert Path(default_data_dir()).is_relative_to(Path.home())
