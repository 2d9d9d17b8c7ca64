"""gridbridge: shared DER lifecycle and T-D coordination platform.

Layers (see docs/architecture.md): ``domain`` and ``engines`` are pure; ``services`` hold use cases and
declare ports; ``store`` and ``adapters`` implement those ports; ``api`` and ``cli`` are entry points.
"""

__version__ = "0.1.0"
