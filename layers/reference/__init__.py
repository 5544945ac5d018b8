"""Reference layers: administrative boundaries, rivers, towns and terrain extracts."""
