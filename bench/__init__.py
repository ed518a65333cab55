"""`make bench`: side-by-side timings in one run (never timed assertions in tests)."""
