"""The one place tests spell a nightcast command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def command_line(
    command: str, url: str, folder: Path | None = None, tickers: Sequence[str] = ("TSLA",), *extra: str
) -> list[str]:
    """`command` on the database at `url`, reading the CSV files in `folder` (if given) for
    `tickers`, then `extra` as given."""
    args = [command, "--database-url", url]
    if folder is not None:
        args += ["--source", "csv", "--csv", str(folder), "--tickers", ",".join(tickers)]
    return [*args, *extra]
