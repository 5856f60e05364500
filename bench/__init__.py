"""Taskloom benchmarks: figures and ratios against baselines measured in the same run.

Run them with `make bench` (or `.venv/bin/python -m bench --help`). Benchmarks are not tests:
nothing here asserts a timing; targets are reported as met or not.
"""
