"""Benchmarks: each script prints its figures as ratios against a floor measured in the same run.

Run them with `make bench` (all, in order), `python -m bench store thumbs` (some) or
`python -m bench --quick` (a short form). Results and their reading are in docs/BENCHMARKS.md.
They are not tests: a figure above its goal is reported, never failed.
"""

# In the order the runner runs them; each is a module `bench.<name>` with a main(argv).
BENCHMARKS = ["store", "thumbs", "throughput", "poll", "gallery", "search"]
