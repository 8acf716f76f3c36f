"""The second stage: a ticker's stored sessions, as arrays, replayed into forecasts
(plan reads, compute is pure, the models are entries of job.forecast.entries)."""
