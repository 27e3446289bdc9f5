"""Lambda archives: layout, files, slimming, bytecode, budget, the zip writer, manifest."""
