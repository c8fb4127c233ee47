"""Generators from files: ``load_model``, the checkpoint formats, official configs inferred from weights."""
