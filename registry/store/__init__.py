"""The registry's store API: every read and write of records goes through :class:`Registry`.

It hands out frozen entities (``registry.entities``) and raises :class:`registry.errors.DriftlineError`
subclasses with messages that name the key (``model 'sentiment' has no version 7``).

Each aggregate lives in its own module: the catalog (models, versions, aliases, decisions), jobs
(drift checks, check requests, runs, leases), traffic (predictions, labels, windows) and the label
queue (its candidates and leases; the ranking is ``labeling``'s). :class:`Registry` is all of them over
one engine: the one object callers hold. Two tables with an API of their own hang off it in the same
transaction scope: ``Registry.tokens`` (named API tokens, ``tokens.py``) and ``Registry.prediction_log``
(retention and export of the log, ``retention.py``).
"""

from __future__ import annotations

from functools import cached_property

from registry.db import check_schema, make_engine
from registry.settings import Settings, get_settings
from registry.store.base import REGISTER_ATTEMPTS, retry_on_conflict
from registry.store.catalog import ALIAS_PATTERN, ALIAS_RULE, MODEL_NAME_PATTERN, MODEL_NAME_RULE, Catalog
from registry.store.jobs import Jobs
from registry.store.labelqueue import LabelQueue
from registry.store.retention import PredictionLogStore
from registry.store.tokens import TokenStore
from registry.store.traffic import MAX_LABEL_CHARS, Traffic, check_labels, clean_label_item, last_labels

__all__ = [
    "ALIAS_PATTERN",
    "ALIAS_RULE",
    "MAX_LABEL_CHARS",
    "MODEL_NAME_PATTERN",
    "MODEL_NAME_RULE",
    "REGISTER_ATTEMPTS",
    "Registry",
    "check_labels",
    "clean_label_item",
    "last_labels",
    "retry_on_conflict",
]


class Registry(Catalog, Jobs, Traffic, LabelQueue):
    """Records of models, versions, aliases, runs, leases, traffic and the label queue in one SQL
    database."""

    @classmethod
    def open(cls, settings: Settings | None = None, *, create_if_empty: bool = True) -> Registry:
        """Connect to the configured database and refuse to go on below the migration head."""
        settings = settings or get_settings()
        engine = make_engine(settings.database_url)
        check_schema(engine, create_if_empty=create_if_empty)
        return cls(engine)

    @cached_property
    def tokens(self) -> TokenStore:
        """Named API tokens with roles: create, list, revoke, authenticate."""
        return TokenStore(self._tx, self._clock)

    @cached_property
    def prediction_log(self) -> PredictionLogStore:
        """The prediction log's retention and export."""
        return PredictionLogStore(self._tx)
