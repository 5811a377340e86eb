"""Loading and validating JSONL/JSON data in the common formats; stats; near-duplicates."""
