"""The README's quick start, walked as written on a fresh directory, then every SQL example
of its contract section run on what it left: each must return rows."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path

import pytest

from job.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def quick_start() -> list[list[str]]:
    """The nightcast commands of the quick start's command line (the install is CI's)."""
    section = README.split("## Quick start", 1)[1]
    line = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert line is not None, "the quick start has no command line"
    commands = [shlex.split(part) for part in line.group(1).split("&&")]
    assert commands[0][:2] == ["pip", "install"], commands
    assert all(command[0] == "nightcast" for command in commands[1:]), commands
    return [command[1:] for command in commands[1:]]


def sql_examples() -> list[str]:
    section = README.split("## The SQL contract", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.+?)\n```", section, re.S)
    assert blocks, "the SQL contract shows no query"
    statements = [s.strip() for block in blocks for s in block.split(";")]
    return [s for s in statements if s and not all(line.startswith("--") for line in s.splitlines())]


@pytest.mark.slow
def test_the_quick_start_leaves_rows_for_every_sql_example_and_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in quick_start():
        assert main(command) == 0, command
    said = capsys.readouterr().out  # the backfill's table says why lstm and naive agree
    assert (
        "TSLA: the stored LSTM forecast is the naive one (the last close) on every replayed session" in said
    )
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "forecast: 2020-08-03" in status and "skill:" in status
    assert "guard:    lstm = naive: the guard keeps the LSTM at the last close" in status
    assert main(["report", "--out", "report"]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<p class="guard">lstm = naive on every session: the guard keeps' in page
    with sqlite3.connect(tmp_path / "nightcast.db") as db:
        db.create_function("SQRT", 1, lambda x: None if x is None else x**0.5)  # where SQLite lacks it
        for query in sql_examples():
            rows = db.execute(query).fetchall()
            assert rows, f"no rows from the README's query:\n{query}"
