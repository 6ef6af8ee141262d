"""regstore: garbage collection and integrity checks for registry stores, offline."""

__version__ = "0.1.0"
