"""pandapower and SimBench behind the envelope service's ports: network model, AC power flows, forecasts,
the naive reference method and plots."""
