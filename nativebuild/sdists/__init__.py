"""Compiling sdists into wheels inside the build image."""
