"""Field sensors: simulators that publish over MQTT as real devices would."""
