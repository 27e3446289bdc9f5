"""The build itself: the context every stage shares, and the steps in order."""
