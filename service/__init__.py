"""The serving process: predictions with adaptive batching, the prediction log, labels, hot swap of
the champion, and the control API. Start it with ``bentoml serve service.app:Driftline`` or
``driftline up``."""
