"""Model governance: selection, model-risk controls and the governed signals."""
