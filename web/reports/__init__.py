"""Reports: what the platform hands over as files (self-contained maps)."""
