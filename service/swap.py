"""Hot swap: follow the registry's champion alias and swap the served model without failing a request.

Every ``interval_s`` the watcher reads the alias. When it points at a new version, the watcher fetches
the artifact, verifies every file's sha256, loads and warms the model in its own thread, and only then
swaps the reference the batcher reads. A version that fails (checksum mismatch, load error) is refused
and logged; the old model keeps serving, and the broken version is not retried until the alias moves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from registry.entities import ModelVersion
from service.runtime import ModelHolder, ServingModel

logger = logging.getLogger(__name__)


class ChampionWatcher:
    def __init__(
        self,
        holder: ModelHolder,
        resolve: Callable[[], ModelVersion | None],
        load: Callable[[ModelVersion], ServingModel],
        *,
        interval_s: float,
    ) -> None:
        self.holder = holder
        self._resolve = resolve
        self._load = load
        self.interval_s = interval_s
        self.refused: dict[tuple[int, str], str] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="driftline-swap", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.interval_s)

    def check_once(self) -> bool:
        """Swap if the champion moved; True when a new model now serves."""
        with self._lock:
            try:
                version = self._resolve()
            except Exception as exc:  # noqa: BLE001 - the registry is unreachable; keep serving
                self.last_error = f"cannot read the champion alias: {exc}"
                logger.warning("%s", self.last_error)
                return False
            if version is None:
                return False
            current = self.holder.current
            key = (version.version, version.artifact_sha256)
            if current is not None and (current.version.version, current.version.artifact_sha256) == key:
                return False
            if key in self.refused:
                return False
            started = time.perf_counter()
            try:
                model = self._load(version)
                warm = model.warm_up()
            except Exception as exc:  # noqa: BLE001 - any failure refuses this version, not the service
                reason = f"{type(exc).__name__}: {exc}"
                self.refused[key] = reason
                self.last_error = f"refused {version.model_name} v{version.version}: {reason}"
                logger.error(
                    "%s; v%s keeps serving", self.last_error, current.version.version if current else "none"
                )
                return False
            previous = self.holder.swap(model)
            logger.info(
                "now serving %s v%s (was %s; loaded and warmed in %.2f s, warm-up %.2f s)",
                version.model_name,
                version.version,
                f"v{previous.version.version}" if previous else "nothing",
                time.perf_counter() - started,
                warm,
            )
            return True
