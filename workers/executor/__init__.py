"""The Ray executor: one generic loop (`pipeline.py`) over a pool of actors per stage (`pool.py`, `actor.py`),
steered by a pure policy (`policy.py`). What runs where is data: specs and profiles (`specs.py`,
`profiles.py`); how frames travel between actors is `transport.py`."""
