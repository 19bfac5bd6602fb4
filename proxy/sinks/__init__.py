"""Where finished records go: the usage log, Prometheus metrics, the SQLite store, the quota book,
trajectories, partials and the body tee.
"""
