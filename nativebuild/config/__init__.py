"""Settings: the cascade from defaults, ``[tool.nativebuild]``, ``NATIVEBUILD_*`` and flags."""
