"""Benchmarks and checks run by hand or by `vidpipe bench`: not part of a job's data path."""
