"""Binaries against the runtime: ELF facts, runtime facts, the check, advice, verify."""
