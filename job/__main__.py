"""`python -m job` is the same as the `nightcast` command."""

from job.cli import main

if __name__ == "__main__":  # Dask's worker processes import this module again: run nothing then
    raise SystemExit(main())
