"""Loading a causal LM (local folder, cached hub id, GGUF, the embedded default) and generating with it."""
