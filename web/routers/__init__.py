"""HTTP routers; each only wires requests to the domain code."""
