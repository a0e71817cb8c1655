"""smsfailover benchmarks (issue 7): `python -m benchmarks` (or `make bench`) runs them all on 127.0.0.1, prints a
table and writes docs/BENCHMARKS.md. `BENCH_QUICK=1` runs every benchmark briefly (a smoke run, not figures).

Every figure is compared with a baseline measured in the same run, because the machine is shared and noisy;
nothing here fails on speed.
"""
