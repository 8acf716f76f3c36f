"""The first stage: prices from a source into `prices`, checked, with what a re-based
history found (job.ingest.run is the loop; it imports nothing of the later stages)."""
