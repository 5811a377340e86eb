"""Training candidates through trainer plugins: specs, the artifact cache, dispatch."""
