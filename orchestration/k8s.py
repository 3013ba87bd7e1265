"""The Kubernetes launcher (``DRIFTLINE_LAUNCHER=kubernetes``): one ``batch/v1`` Job per run, made from a
template, through the official ``kubernetes`` client.

The template (``DRIFTLINE_K8S_JOB_TEMPLATE``, a Job manifest; ``deploy/k8s`` ships one in a ConfigMap) is
copied per run: its name becomes ``driftline-run-<id>-<attempt>``, it gets the labels the launcher finds
its Jobs by, ``--run-id <id>`` is appended to the first container's args, and ``DRIFTLINE_RUN_ID`` is set.
Settings the template does not set itself are passed in from the scheduler's own: the model name and the
artifact root; the database URL only when the template has no ``envFrom`` and no such variable (it holds
a password: the template should take it from a Secret). The image (``DRIFTLINE_K8S_RUN_IMAGE``), a node
selector and a GPU request are settings.

A retry is a new pod: it resumes from checkpoints only if the run's work folder
(``<DRIFTLINE_HOME>/cache/runs/<id>``) is on a volume the pods share; on an ``emptyDir`` it trains afresh.

Status: a Job with a ``Complete`` condition exited 0, one with ``Failed`` exited 1 (Kubernetes keeps the
container's exit code on the pod, not the Job; the run's record says what happened); any other Job of
the launcher is active. Jobs are found by label, so a scheduler that takes over the lease sees the runs
its predecessor started.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANAGED_BY = "driftline-scheduler"
RUN_LABEL = "driftline.io/run-id"
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
PASSED_IN = ("DRIFTLINE_MODEL_NAME", "DRIFTLINE_ARTIFACT_ROOT")


def load_template(path: Path) -> dict[str, Any]:
    """The Job manifest at ``path`` (YAML), checked to be a ``batch/v1`` Job with a container."""
    import yaml

    try:
        manifest = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"DRIFTLINE_K8S_JOB_TEMPLATE: cannot read {path}: {exc.strerror}") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("kind") != "Job"
        or manifest.get("apiVersion") != "batch/v1"
    ):
        raise ValueError(f"DRIFTLINE_K8S_JOB_TEMPLATE: {path} is not a batch/v1 Job manifest")
    containers = manifest.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    if not containers:
        raise ValueError(f"DRIFTLINE_K8S_JOB_TEMPLATE: {path} has no container under spec.template.spec")
    return manifest


def current_namespace(default: str = "default") -> str:
    """The pod's own namespace (the service account's file), else ``default``."""
    try:
        return NAMESPACE_FILE.read_text().strip() or default
    except OSError:
        return default


def render_job(
    template: dict[str, Any],
    run_id: int,
    attempt: int,
    *,
    env: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    gpus: int = 0,
    image: str | None = None,
) -> dict[str, Any]:
    """The Job for one attempt of run ``run_id``, as a manifest (a dict the client sends as it is)."""
    job = copy.deepcopy(template)
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, RUN_LABEL: str(run_id)}
    meta = job.setdefault("metadata", {})
    meta["name"] = f"driftline-run-{run_id}-{attempt}"
    meta.pop("generateName", None)
    meta["labels"] = {**meta.get("labels", {}), **labels}
    pod = job["spec"]["template"]
    pod.setdefault("metadata", {})["labels"] = {**pod.get("metadata", {}).get("labels", {}), **labels}
    spec = pod["spec"]
    container = spec["containers"][0]
    container["args"] = [*container.get("args", []), "--run-id", str(run_id)]
    if image:
        container["image"] = image
    have = {item.get("name") for item in container.get("env", [])}
    extra = {"DRIFTLINE_RUN_ID": str(run_id)}
    environ = os.environ if env is None else env
    for name in PASSED_IN:
        if name in environ and name not in have:
            extra[name] = environ[name]
    if (
        "DRIFTLINE_DATABASE_URL" not in have
        and not container.get("envFrom")
        and "DRIFTLINE_DATABASE_URL" in environ
    ):
        extra["DRIFTLINE_DATABASE_URL"] = environ["DRIFTLINE_DATABASE_URL"]
    container["env"] = [e for e in container.get("env", []) if e.get("name") not in extra] + [
        {"name": k, "value": v} for k, v in extra.items()
    ]
    if node_selector:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **node_selector}
    if gpus:
        resources = container.setdefault("resources", {})
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(gpus)
    spec["restartPolicy"] = "Never"
    job["spec"]["backoffLimit"] = 0  # Driftline retries a run itself, resuming from its checkpoints
    return job


def job_state(job: Any) -> int | None:
    """None while a Job runs; 0 once it completed, 1 once it failed (a ``V1Job`` of the client)."""
    status = job.status
    for condition in (status.conditions or []) if status is not None else []:
        if condition.status == "True" and condition.type in ("Complete", "SuccessCriteriaMet"):
            return 0
        if condition.status == "True" and condition.type in ("Failed", "FailureTarget"):
            return 1
    return None


def run_id_of(job: Any) -> int | None:
    value = (job.metadata.labels or {}).get(RUN_LABEL)
    return int(value) if value and value.isdigit() else None


class KubernetesLauncher:
    """Each run as a Job in ``namespace``; ``api`` is a ``kubernetes.client.BatchV1Api`` (made from the
    in-cluster configuration, else ``~/.kube/config``, when not given)."""

    def __init__(
        self,
        template: dict[str, Any],
        namespace: str,
        *,
        api: Any = None,
        env: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None,
        gpus: int = 0,
        image: str | None = None,
    ) -> None:
        self.template = template
        self.image = image
        self.namespace = namespace
        self.env = env
        self.node_selector = node_selector or {}
        self.gpus = gpus
        self._api = api
        self._reported: set[str] = set()  # Jobs whose end exited() has returned

    @property
    def api(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.BatchV1Api()
        return self._api

    def _jobs(self, run_id: int | None = None) -> list[Any]:
        selector = SELECTOR if run_id is None else f"{SELECTOR},{RUN_LABEL}={run_id}"
        return list(self.api.list_namespaced_job(self.namespace, label_selector=selector).items)

    def launch(self, run_id: int) -> None:
        attempt = len(self._jobs(run_id)) + 1
        job = render_job(
            self.template,
            run_id,
            attempt,
            env=self.env,
            node_selector=self.node_selector,
            gpus=self.gpus,
            image=self.image,
        )
        self.api.create_namespaced_job(self.namespace, job)
        logger.info("started run %s as Job %s/%s", run_id, self.namespace, job["metadata"]["name"])

    def active(self) -> list[int]:
        return sorted(
            {rid for job in self._jobs() if job_state(job) is None and (rid := run_id_of(job)) is not None}
        )

    def exited(self) -> dict[int, int]:
        """Runs whose latest Job ended since the last call (an earlier attempt's end is old news)."""
        latest: dict[int, Any] = {}
        for job in sorted(self._jobs(), key=_attempt):
            if (rid := run_id_of(job)) is not None:
                latest[rid] = job
        found: dict[int, int] = {}
        for rid, job in latest.items():
            state = job_state(job)
            if state is not None and job.metadata.name not in self._reported:
                self._reported.add(job.metadata.name)
                found[rid] = state
        return found


def _attempt(job: Any) -> int:
    suffix = str(job.metadata.name).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
