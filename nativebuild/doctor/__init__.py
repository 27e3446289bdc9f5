"""``nativebuild doctor``: can this machine build for the configured targets?"""
