"""Use cases. Each owns a unit of work and talks to storage and solvers through ports (services.ports)."""
