"""Traffic: signal performance measures, map matching, speeds, red-light checks, message signs."""
