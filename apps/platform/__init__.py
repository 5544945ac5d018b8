"""The platform itself: command line, embedded services, start-up."""
