"""Property-based ingest: whatever a CSV holds, either it is refused with one line naming the
ticker and nothing stored changes, or what is stored is exactly what the file says.

The oracle reads the file with Python's own `csv` and `float`, independently of the pandas
reader: High/Low widened to cover Open/Close (the one repair validation makes), volumes
rounded to the nearest count.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job.db import get_engine
from job.ingest.run import ingest_many
from job.ingest.sources import CsvSource
from job.persist.steps import revision_follower
from job.support.calendar import Calendars, get_sessions

XNYS = get_sessions("XNYS")
DAYS = XNYS.sessions_in_range(dt.date(2020, 6, 1), dt.date(2020, 7, 31))
NIGHT = dt.datetime(2020, 8, 3, 22, 0, tzinfo=dt.UTC)
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
KEPT = "SELECT ticker, date, open, high, low, close, adj_close, volume FROM prices ORDER BY ticker, date"
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0.01, max_value=1e4).map(lambda x: f"{x:.4f}"),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "null", "inf", "-inf", "nan", "1e30", "9223372036854775808", "0", "-1", "abc",
                     '"78,657,500"', "1,5", " 7 ", "1e308", "1e-320"]),
)  # fmt: skip
dates = st.one_of(
    st.sampled_from(DAYS).map(dt.date.isoformat),
    st.dates(min_value=dt.date(2020, 5, 25), max_value=dt.date(2020, 8, 10)).map(dt.date.isoformat),
    st.sampled_from(["", "2020-13-01", "31/07/2020", "2020-07-31T00:00:00", "x"]),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """Mostly well-formed files with arbitrary cells; sometimes arbitrary text altogether."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))
    good_days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=8, unique=True))
    rows = []
    for day in sorted(good_days):
        cells = [day.isoformat(), "10", "11", "9", "10.5", "10.5", "1000"]
        for i in draw(st.sets(st.integers(0, 6), max_size=2)):
            cells[i] = draw(dates) if i == 0 else draw(numbers)
        rows.append(",".join(cells))
    return "\n".join([HEADER, *rows]) + "\n"


def expected_rows(text: str, ticker: str, start: dt.date) -> list[tuple]:
    """What storing `text` must leave for sessions start..NIGHT, computed without the product's
    reader."""
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    next(reader)
    out = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        day = dt.date.fromisoformat(row[0].strip()[:10])
        if start <= day <= NIGHT.date():
            o, h, lo, c, a, v = (float(cell) for cell in row[1:])
            out.append((ticker, day, o, max(h, o, c), min(lo, o, c), c, a, round(v)))
    return sorted(out, key=lambda r: r[1])


def snapshot(url: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return [(*r[:1], _day(r[1]), *r[2:]) for r in conn.execute(sa.text(KEPT))]


def _day(value: object) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _close(a: tuple, b: tuple) -> bool:
    return (
        a[:2] == b[:2]
        and a[7] == b[7]
        and all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a[2:7], b[2:7], strict=True))
    )


def ingest(url: str, tickers: list[str], source: CsvSource) -> list:
    with get_engine(url).connect() as conn:
        return ingest_many(
            conn,
            tickers,
            source,
            Calendars(),
            history_start=DAYS[0],
            now=NIGHT,
            follow=revision_follower([5]),
        )


@pytest.fixture
def baseline(migrated_url: str, tmp_path: Path) -> Callable[[], str]:
    """Resets a database to holding BASE's prices (June-July 2020) and nothing else."""
    path = tmp_path / "base" / "BASE.csv"
    path.parent.mkdir()
    path.write_text(HEADER + "\n" + "".join(f"{d},10,11,9,10.5,10.5,1000\n" for d in DAYS))

    def reset() -> str:
        with get_engine(migrated_url).begin() as conn:
            conn.execute(sa.text("DELETE FROM prices"))
        assert ingest(migrated_url, ["BASE"], CsvSource(path))[0].ok
        return migrated_url

    return reset


@pytest.mark.slow  # generates many inputs
@PROPERTY
@given(text=csv_texts())
def test_a_new_ticker_is_refused_in_one_line_or_stored_as_written(
    baseline: Callable[[], str], tmp_path: Path, text: str
) -> None:
    url = baseline()
    path = tmp_path / "X.csv"
    path.write_text(text, encoding="utf-8")
    before = snapshot(url)
    [outcome] = ingest(url, ["X"], CsvSource(path))
    after = snapshot(url)
    if outcome.ok:
        assert [r for r in after if r[0] != "X"] == before
        stored, wanted = [r for r in after if r[0] == "X"], expected_rows(text, "X", DAYS[0])
        assert len(stored) == len(wanted) and all(map(_close, stored, wanted)), (stored, wanted)
    else:
        assert_one_line(outcome.error, "X")
        assert after == before


@pytest.mark.slow  # generates many inputs
@PROPERTY
@given(text=csv_texts())
def test_a_stored_ticker_takes_a_night_whole_or_not_at_all(
    baseline: Callable[[], str], tmp_path: Path, text: str
) -> None:
    """A night re-fetches the last stored sessions and appends; whatever the file holds, the
    ticker ends as the file says (from the fetch start, or all of it after a revision) or as
    it was; no stored session is lost (after a re-basing, one the file omits is kept in the
    new units)."""
    url = baseline()
    path = tmp_path / "BASE.csv"
    path.write_text(text, encoding="utf-8")
    before = snapshot(url)
    [outcome] = ingest(url, ["BASE"], CsvSource(path))
    after = snapshot(url)
    if not outcome.ok:
        assert_one_line(outcome.error, "BASE")
        assert after == before
        return
    assert outcome.result is not None
    revised = outcome.result.revised is not None
    start = DAYS[0] if revised else sorted(r[1] for r in before)[-10]  # the re-fetched overlap
    wanted = {r[1]: r for r in expected_rows(text, "BASE", start)}
    stored = {r[1]: r for r in after}
    factor = outcome.result.revised.factor if revised else 1.0
    kept = {r[1]: (*r[:2], *(x * factor for x in r[2:7]), r[7]) for r in before if r[1] not in wanted}
    assert stored.keys() == wanted.keys() | kept.keys()
    assert all(_close(stored[d], wanted[d]) for d in wanted)
    assert all(_close(stored[d], kept[d]) for d in kept)


def assert_one_line(error: str | None, ticker: str) -> None:
    assert error is not None and "\n" not in error and error.startswith(f"{ticker}: "), error
