"""FastAPI entry point: app factory, authentication, problem+json errors, routers per area."""
