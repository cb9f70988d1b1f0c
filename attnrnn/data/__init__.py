"""Data: reading files, tokenizing, vocabularies, datasets and batching."""
