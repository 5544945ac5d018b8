"""Flood application: hydrology, rainfall, runoff, inundation and evacuation."""
