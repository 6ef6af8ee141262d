"""Benchmarks of regstore against the registry's own garbage collector (see bench/README.md)."""
