"""Pure rules and value types of the T-D coordination domain. No I/O, no frameworks."""
