"""`python -m job` is the same as the `nightcast` command."""

from job.cli import main

raise SystemExit(main())
