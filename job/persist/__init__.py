"""The third stage: what the compute stage produced, stored atomically per ticker, and
what a price revision asks of what is stored."""
