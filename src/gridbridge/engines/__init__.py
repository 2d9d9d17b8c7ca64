"""Numerical cores on arrays: envelopes, clearing, disaggregation, conflicts. No I/O, no frameworks."""
