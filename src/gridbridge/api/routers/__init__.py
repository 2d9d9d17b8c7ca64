"""One router per area of the registry."""
