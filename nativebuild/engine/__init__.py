"""The container engine: records and the runner Protocol, Docker, builders, images."""
