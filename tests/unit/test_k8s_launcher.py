"""The Kubernetes launcher (issue 14, point 4): the Job it would create, rendered from a template and
validated against the Kubernetes schema (no cluster here), and its status mapping on the client's own
model objects."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

kubernetes = pytest.importorskip(
    "kubernetes", reason="the kubernetes client is not installed (make venv does)"
)
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)

from kubernetes.client import V1Job, V1JobCondition, V1JobList, V1JobStatus, V1ObjectMeta  # noqa: E402

from orchestration.k8s import KubernetesLauncher, job_state, render_job  # noqa: E402

K8S_VERSION = "1.33.0"
TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "driftline-run-template", "labels": {"app.kubernetes.io/name": "driftline"}},
    "spec": {
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "run",
                        "image": "driftline:0.1.0",
                        "command": ["python", "-m", "retrain"],
                        "args": ["run"],
                        "envFrom": [{"secretRef": {"name": "driftline-secrets"}}],
                        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                    }
                ],
            }
        },
    },
}


def test_the_rendered_job_is_valid_and_carries_the_run() -> None:
    env = {
        "DRIFTLINE_MODEL_NAME": "tickets",
        "DRIFTLINE_ARTIFACT_ROOT": "s3://bucket/artifacts",
        "DRIFTLINE_DATABASE_URL": "postgresql://u:secret@db/driftline",
    }
    job = render_job(TEMPLATE, 7, 2, env=env, node_selector={"pool": "gpu"}, gpus=1)
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True) is not None
    assert job["metadata"]["name"] == "driftline-run-7-2"
    assert job["metadata"]["labels"]["driftline.io/run-id"] == "7"
    assert job["spec"]["template"]["metadata"]["labels"]["driftline.io/run-id"] == "7"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["run", "--run-id", "7"]
    values = {e["name"]: e["value"] for e in container["env"]}
    assert values == {
        "DRIFTLINE_RUN_ID": "7",
        "DRIFTLINE_MODEL_NAME": "tickets",
        "DRIFTLINE_ARTIFACT_ROOT": "s3://bucket/artifacts",
    }  # the database URL comes from the template's Secret, never written into the Job
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert TEMPLATE["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run"
    ]  # the template is untouched


def test_a_template_without_a_secret_gets_the_database_url() -> None:
    bare = copy.deepcopy(TEMPLATE)
    del bare["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    job = render_job(bare, 3, 1, env={"DRIFTLINE_DATABASE_URL": "postgresql://db/d"})
    names = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names == ["DRIFTLINE_RUN_ID", "DRIFTLINE_DATABASE_URL"]
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True) is not None


def test_a_wrong_template_fails_the_schema() -> None:
    job = render_job(TEMPLATE, 1, 1, env={})
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = {"not": "a quantity"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def job(name: str, run_id: int, *conditions: tuple[str, str], active: int | None = None) -> V1Job:
    return V1Job(
        metadata=V1ObjectMeta(
            name=name,
            labels={
                "app.kubernetes.io/managed-by": "driftline-scheduler",
                "driftline.io/run-id": str(run_id),
            },
        ),
        status=V1JobStatus(
            active=active,
            conditions=[
                V1JobCondition(type=t, status=s, last_transition_time=datetime(2026, 12, 3, tzinfo=UTC))
                for t, s in conditions
            ]
            or None,
        ),
    )


class FakeBatchApi:
    """``BatchV1Api``'s two calls the launcher makes, on the client's model objects."""

    def __init__(self, jobs: list[V1Job]) -> None:
        self.jobs = jobs
        self.created: list[tuple[str, dict]] = []
        self.selectors: list[str] = []

    def list_namespaced_job(self, namespace: str, label_selector: str) -> V1JobList:
        self.selectors.append(label_selector)
        wanted = dict(part.split("=") for part in label_selector.split(","))
        return V1JobList(items=[j for j in self.jobs if wanted.items() <= j.metadata.labels.items()])

    def create_namespaced_job(self, namespace: str, body: dict) -> None:
        self.created.append((namespace, body))


def test_job_states_map_to_the_launchers_answers() -> None:
    assert job_state(job("a", 1, active=1)) is None
    assert job_state(job("b", 1, ("Complete", "True"))) == 0
    assert job_state(job("c", 1, ("Failed", "True"))) == 1
    assert job_state(job("d", 1, ("Failed", "False"), active=1)) is None
    assert job_state(V1Job(metadata=V1ObjectMeta(name="e"), status=None)) is None


def test_launch_active_and_exited() -> None:
    api = FakeBatchApi(
        [
            job("driftline-run-4-1", 4, ("Failed", "True")),
            job("driftline-run-4-2", 4, active=1),
            job("driftline-run-5-1", 5, ("Complete", "True")),
            job("driftline-run-6-1", 6, ("Failed", "True")),
        ]
    )
    launcher = KubernetesLauncher(TEMPLATE, "ml", api=api, env={})
    launcher.launch(4)
    namespace, body = api.created[0]
    assert namespace == "ml" and body["metadata"]["name"] == "driftline-run-4-3"  # its third attempt
    assert "driftline.io/run-id=4" in api.selectors[0]
    assert launcher.active() == [4]
    assert launcher.exited() == {5: 0, 6: 1}  # run 4's first attempt failed, but its second is running
    assert launcher.exited() == {}  # each end is reported once
    api.jobs[1] = job("driftline-run-4-2", 4, ("Complete", "True"))
    assert launcher.active() == [] and launcher.exited() == {4: 0}


def test_the_setting_builds_the_launcher_from_the_shipped_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from monitor.settings import MonitorSettings
    from orchestration.launch import make_launcher

    shipped = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "run-job.yaml"
    monkeypatch.setenv("DRIFTLINE_LAUNCHER", "kubernetes")
    monkeypatch.setenv("DRIFTLINE_K8S_JOB_TEMPLATE", str(shipped))
    monkeypatch.setenv("DRIFTLINE_K8S_NAMESPACE", "ml")
    monkeypatch.setenv("DRIFTLINE_K8S_RUN_IMAGE", "registry.example/driftline:1.2.3")
    monkeypatch.setenv("DRIFTLINE_K8S_NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("DRIFTLINE_K8S_GPUS", "1")
    settings = MonitorSettings()
    launcher = make_launcher(settings.launcher, settings)
    assert isinstance(launcher, KubernetesLauncher) and launcher.namespace == "ml"
    api = FakeBatchApi([])
    launcher._api = api
    launcher.launch(12)
    body = api.created[0][1]
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/driftline:1.2.3" and container["args"][-2:] == [
        "--run-id",
        "12",
    ]
    assert body["spec"]["template"]["spec"]["nodeSelector"]["pool"] == "gpu"
    assert kubernetes_validate.validate(body, K8S_VERSION, strict=True) is not None
    monkeypatch.delenv("DRIFTLINE_K8S_JOB_TEMPLATE")
    with pytest.raises(ValueError, match="needs DRIFTLINE_K8S_JOB_TEMPLATE"):
        make_launcher("kubernetes", MonitorSettings())
