"""Emergency dispatch (CAD): incidents, recommendations by road travel time, assignments,
GPS-driven lifecycle, escalations, coverage analysis and CAP 1.2 alerts."""
