"""The workloads: each takes the run's Context and returns one Table."""
