"""What the default network reads from each stored bar, and the transparent forecast of spread.

Pure numpy. Every value for session j reads bars j - CONTEXT .. j only (fixed spans, no
running sums), so it is the same number whatever history a process holds, and tampering
with a bar after j leaves it unchanged.

Per session j (its return is the one into close j):
- `ret`: log(C_j / C_j-1), the close-to-close return the network forecasts;
- `range`: the log of the day's variance proxy v_j: Rogers-Satchell's intraday variance
  ln(H/C) ln(H/O) + ln(L/C) ln(L/O) plus the squared overnight gap ln(O_j / C_j-1), which
  together measure the close-to-close variance several times more efficiently than r_j^2
  (Rogers & Satchell 1991; Alizadeh, Brandt & Diebold 2002);
- `gap`: the overnight gap ln(O_j / C_j-1);
- `volume`: log of volume over its median of the previous VOLUME_SESSIONS sessions;
- `range_5`, `range_22`: the mean of `range` over the last 5 and 22 sessions (HAR's weekly
  and monthly scales, Corsi 2009).

A bar whose open, high or low is unusable (missing, not positive, outside [low, high], or a
zero range, which a quote feed serves when it has only the close) is not read: its `range`
falls back to r_j^2, its gap to 0. A missing or non-positive volume reads as usual volume.
A series of closes alone is the same case throughout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

NAMES = ("ret", "range", "gap", "volume", "range_5", "range_22")
RET = NAMES.index("ret")
VOLUME_SESSIONS = 22
#: Sessions before j that the values of session j read (the longest span, and its return).
CONTEXT = max(22, VOLUME_SESSIONS) + 1
#: Floor of the variance proxy: (0.01%)^2, so a flat day's log stays finite.
FLOOR = 1e-8
#: HAR baseline: sessions each regression is fit on (a fixed span up to the as-of session).
HAR_SESSIONS = 500


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


@dataclass(frozen=True, eq=False)
class OHLCV:
    """A ticker's bars as arrays, oldest first; open/high/low/volume NaN where not known."""

    close: np.ndarray
    open: np.ndarray = field(default_factory=lambda: _nan(0))
    high: np.ndarray = field(default_factory=lambda: _nan(0))
    low: np.ndarray = field(default_factory=lambda: _nan(0))
    volume: np.ndarray = field(default_factory=lambda: _nan(0))

    def __post_init__(self) -> None:
        n = len(self.close)
        for name in ("open", "high", "low", "volume"):
            value = np.asarray(getattr(self, name), np.float64)
            object.__setattr__(self, name, _nan(n) if len(value) == 0 and n else value)
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(value)} values for {n} closes")

    def __len__(self) -> int:
        return len(self.close)

    def __getitem__(self, rows: slice) -> OHLCV:
        return OHLCV(self.close[rows], self.open[rows], self.high[rows], self.low[rows], self.volume[rows])


def as_ohlcv(prices: OHLCV | np.ndarray) -> OHLCV:
    """Bars as given, or closes alone as bars whose other values are unknown."""
    return prices if isinstance(prices, OHLCV) else OHLCV(np.asarray(prices, np.float64))


def usable(bars: OHLCV) -> np.ndarray:
    """Per bar, whether its open, high and low can be read with its close."""
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(o) & np.isfinite(h) & np.isfinite(lo)
            & (lo > 0) & (h > lo) & (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        )  # fmt: skip


def variance_proxy(bars: OHLCV) -> np.ndarray:
    """v_j per session (NaN at the first, which has no previous close), floored at FLOOR."""
    c = bars.close
    ok = usable(bars)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.diff(np.log(c))
        o, h, lo, close = bars.open[1:], bars.high[1:], bars.low[1:], c[1:]
        rs = np.log(h / close) * np.log(h / o) + np.log(lo / close) * np.log(lo / o)
        gap = np.log(o / c[:-1])
        v = np.where(ok, rs + np.square(gap), np.square(ret))
    return np.concatenate([[np.nan], np.maximum(v, FLOOR)])


def _trailing_mean(values: np.ndarray, span: int) -> np.ndarray:
    out = _nan(len(values))
    if len(values) >= span:
        out[span - 1 :] = np.lib.stride_tricks.sliding_window_view(values, span).mean(axis=1)
    return out


def table(bars: OHLCV) -> np.ndarray:
    """(n, len(NAMES)) values per session; rows before CONTEXT are NaN (too little history)."""
    bars = as_ohlcv(bars)
    n, c = len(bars), bars.close
    ok = usable(bars)
    log_v = np.log(variance_proxy(bars))
    ret, gap = _nan(n), _nan(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret[1:] = np.diff(np.log(c))
        gap[1:] = np.where(ok[1:], np.log(bars.open[1:] / c[:-1]), 0.0)
        volume = np.where(np.isfinite(bars.volume) & (bars.volume > 0), bars.volume, np.nan)
        level = _nan(n)
        if n > VOLUME_SESSIONS:
            past = np.lib.stride_tricks.sliding_window_view(volume[:-1], VOLUME_SESSIONS)
            with warnings.catch_warnings():  # a span without any volume: NaN, read as usual volume
                warnings.simplefilter("ignore", RuntimeWarning)
                level[VOLUME_SESSIONS:] = np.nanmedian(past, axis=1)
        relative = np.clip(np.nan_to_num(np.log(volume / level), nan=0.0, posinf=0.0, neginf=0.0), -5, 5)
    out = np.column_stack([ret, log_v, gap, relative, _trailing_mean(log_v, 5), _trailing_mean(log_v, 22)])
    out[:CONTEXT] = np.nan
    return out


def har_scale(bars: OHLCV, positions: np.ndarray) -> np.ndarray:
    """The transparent forecast of the next return's standard deviation as of each position:
    a HAR regression of the next log v on today's, the 5- and 22-session means, fit by least
    squares on the HAR_SESSIONS sessions up to the position only; sigma = sqrt(exp(fitted +
    residual variance / 2)), the log-normal mean. NaN where too little history exists.

    All positions at once, from running sums of the regression's cross products (its normal
    equations): a night asks for a year of positions, and one least-squares solve each cost
    more than the rest of the night's compute. Equal to a solve per position to 1e-10 or so
    relative; a window whose equations are singular is solved on its own, by least squares."""
    bars = as_ohlcv(bars)
    values = table(bars)
    x = np.column_stack([np.ones(len(bars)), values[:, 1], values[:, 4], values[:, 5]])
    y = np.append(values[1:, 1], np.nan)  # row j's target: log v_{j+1}
    j = np.asarray(positions, np.int64)
    out = _nan(len(j))
    lo = np.maximum(CONTEXT, j - HAR_SESSIONS)  # rows lo..j-1: targets known as of j
    n_rows = np.maximum(j - lo, 0)
    known = np.isfinite(x).all(axis=1) & np.isfinite(y)
    xk, yk = np.where(known[:, None], x, 0.0), np.where(known, y, 0.0)

    def running(a: np.ndarray) -> np.ndarray:  # sums of rows [0, k) at index k
        return np.concatenate([np.zeros((1, *a.shape[1:])), np.cumsum(a, axis=0)])

    gaps = running((~known).astype(float))
    fit = (n_rows >= 4 * x.shape[1]) & np.isfinite(x[j]).all(axis=1)
    fit[fit] = gaps[j[fit]] == gaps[lo[fit]]  # every row of the window usable
    j, lo, n_rows = j[fit], lo[fit], n_rows[fit]
    if not len(j):
        return out
    xx = running(xk[:, :, None] * xk[:, None, :])
    xy, yy = running(xk * yk[:, None]), running(yk * yk)
    a, b, c = xx[j] - xx[lo], xy[j] - xy[lo], yy[j] - yy[lo]
    try:
        beta = np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # a flat stretch: columns collinear in some window
        beta = np.array([np.linalg.lstsq(x[p:q], y[p:q], rcond=None)[0] for p, q in zip(lo, j, strict=True)])
    rss = c - 2.0 * np.einsum("ni,ni->n", beta, b) + np.einsum("ni,nij,nj->n", beta, a, beta)
    fitted = np.einsum("ni,ni->n", x[j], beta)
    out[fit] = np.sqrt(np.exp(fitted + 0.5 * np.maximum(rss, 0.0) / n_rows))
    return out
