"""nightcast: nightly LSTM forecasts of stock closes, stored in SQL next to the naive forecast."""

__version__ = "0.1.0"
