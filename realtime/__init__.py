"""Where live data comes in: MQTT ingest, rules and alarms, live fan-out to consoles."""
