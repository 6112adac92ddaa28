"""README's two commands, as written, on a fresh clone with a new venv and no pip cache.

The inner `make test` runs this whole suite once more; this test skips itself there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INNER = "LOGMR_README_TEST_INNER"


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already inside the README test")
@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                    reason="needs a git checkout to clone")
def test_make_demo_and_make_test_on_a_fresh_clone(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    clone = tmp_path / "logmr"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOGMR_", "VIRTUAL_ENV", "PYTEST"))}
    env.update({INNER: "1", "PIP_NO_CACHE_DIR": "1"})
    for command in (["make", "demo"], ["make", "test"]):
        done = subprocess.run(command, cwd=clone, env=env, capture_output=True, timeout=1800,
                              check=False)
        tail = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{tail}"
    assert b"demo done" in subprocess.run(["make", "demo"], cwd=clone, env=env,
                                          capture_output=True, check=True).stdout
