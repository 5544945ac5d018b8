"""Water: surface water quality, drought, water-resources permits and upstream tracing."""
