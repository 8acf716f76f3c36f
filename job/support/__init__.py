"""What every stage leans on and none owns: the clock, exchange calendars, logging,
secret masking and atomic file writes."""
