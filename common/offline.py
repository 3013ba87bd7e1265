"""The offline environment: nothing is downloaded or reported at run time (Hugging Face hub, datasets and
transformers offline, no telemetry from them or BentoML, no tokenizer threads forked under a server).

The one source for every process Driftline starts; the Makefile's ``export``s and the Dockerfile's ``ENV``
repeat it because neither can import Python, and tests/integration/test_deploy_files.py holds them to it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def go_offline(environ: MutableMapping[str, str] | None = None, *, force: bool = False) -> None:
    """Set the offline switches in ``environ`` (``os.environ``) before transformers is imported; a value
    already set is kept (someone chose it) unless ``force``, as the benchmarks and tests ask."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_ENV.items():
        if force:
            env[key] = value
        else:
            env.setdefault(key, value)
