"""Adapters to outside libraries and data sources (pandapower, SimBench, files) implementing service ports."""
