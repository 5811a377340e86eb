"""pytest plugin: suite files as tests (being built)."""
