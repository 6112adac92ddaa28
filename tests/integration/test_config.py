"""Flags win, then LOGMR_* variables, then the TOML file, then defaults."""

from __future__ import annotations

from pathlib import Path

from tests.cluster import logmr


def test_precedence_and_show(tmp_path: Path) -> None:
    conf = tmp_path / "logmr.toml"
    conf.write_text('servers = "127.0.0.1:1"\n\n[ship]\nspool_dir = "/tmp/from-file"\n')
    env = {"LOGMR_CONFIG": str(conf)}
    # the file's job server is used (and named when it cannot be reached)
    out = logmr("grep", "x", env=env)
    assert out.returncode == 2 and b"127.0.0.1:1" in out.stderr
    # the environment beats the file, a flag beats both
    out = logmr("grep", "x", env=env, servers="127.0.0.1:2")  # sets LOGMR_SERVERS
    assert b"127.0.0.1:2" in out.stderr and b"127.0.0.1:1" not in out.stderr
    out = logmr("grep", "--servers", "127.0.0.1:3", "x", env=env, servers="127.0.0.1:2")
    assert b"127.0.0.1:3" in out.stderr
    shown = logmr("config", "show", "ship", env={**env, "LOGMR_SPOOL_DIR": "/tmp/from-env"})
    assert shown.returncode == 0
    text = shown.stdout.decode()
    assert f"# config file: {conf}" in text
    assert "ship.servers = '127.0.0.1:1'  # config file" in text
    assert "ship.spool_dir = '/tmp/from-env'  # environment" in text
    assert "ship.batch_lines = 4000  # default" in text


def test_bad_config_files_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("servers = [unclosed\n")
    for args, needle in ((["--config", str(bad), "status"], b"not valid TOML"),
                         (["--config", str(tmp_path / "none.toml"), "status"], b"does not exist")):
        out = logmr(*args)
        assert out.returncode == 2 and needle in out.stderr and out.stderr.count(b"\n") == 1
    table = tmp_path / "table.toml"
    table.write_text("[nosuchcommand]\nx = 1\n")
    out = logmr("--config", str(table), "status")
    assert out.returncode == 2 and b"no such command" in out.stderr
