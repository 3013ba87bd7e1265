"""The control API: a FastAPI app mounted into the BentoML service at ``/api``."""
