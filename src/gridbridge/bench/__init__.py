"""Benchmarks behind ``gridbridge bench``: each prints figures and ratios against a baseline run in-process."""
