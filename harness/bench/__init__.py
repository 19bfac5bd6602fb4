"""The benchmark: a fast mock, a bare relay (the floor), the targets, a load generator and the report.

`ccp bench` / `make bench` runs `harness.bench.run.main`.
"""
