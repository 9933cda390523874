"""modmt.benchmarks: quality (chrF++) and speed measurements, and the `modmt` command group on top."""
