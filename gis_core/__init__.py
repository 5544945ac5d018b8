"""The spatial core: storage, schema, coordinate systems, identity; no HTTP, no MQTT."""
