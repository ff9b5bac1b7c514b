"""The reply engines as Ray Serve deployments (DOPPEL_ENGINES=ray), and the clients that put them behind core's ports.

Ray is imported here and nowhere else. `bot/wiring.py` picks this family; the pipeline sees the same ports.
"""
