"""What the city does with its data: dispatch, flood, environment, registry, traffic."""
