"""The deployment files agree with the code: one pinned Qdrant tag, real settings, real console scripts.

Parses docker-compose.yml, deploy/cluster/docker-compose.yml, deploy/Dockerfile and deploy/k8s/*.yaml
(nothing here needs Docker or a cluster); ``docker compose config`` and ``kubectl kustomize`` run where
those binaries exist and are skipped otherwise. Also the settings rules the deploy files rely on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ingest.settings import IngestSettings
from search.http.settings import ServiceSettings
from search.settings import SearchSettings
from tests.qdrant_server import QDRANT_IMAGE, QDRANT_TAG

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER = ROOT / "deploy" / "cluster" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
DOCS = ROOT / "docs" / "deploy.md"

VALID_ESCO_VARS = {f"ESCO_{name.upper()}" for name in IngestSettings.model_fields} | {
    f"ESCO_SERVICE_{name.upper()}" for name in ServiceSettings.model_fields}
# Names with the ESCO_ prefix that are not settings and may appear in the docs.
TEST_ONLY_VARS = {"ESCO_TEST_QDRANT_URL"}
_ESCO_VAR = re.compile(r"\bESCO_[A-Z0-9_]*[A-Z0-9]\b")
_INTERP = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


# --- helpers ---------------------------------------------------------------------------------------
def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def k8s_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in load_all(p) if isinstance(d, dict) and "kind" in d]


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def interpolate(value: Any) -> str:
    """A compose value with every ``${VAR:-default}`` at its default (``${VAR}``: empty), ``$$`` -> ``$``."""
    return _INTERP.sub(lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""), str(value))


def env_dict(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def qdrant_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).split(":")[0].endswith("qdrant/qdrant")}


def worker(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]["ingest"]


def container_ports(service: dict[str, Any]) -> set[int]:
    out = set()
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.add(int(p["target"]))
        else:
            out.add(int(interpolate(p).rsplit(":", 1)[-1].split("/")[0]))
    return out


def console_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def as_list(cmd: Any) -> list[str]:
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def command_text(service: dict[str, Any]) -> str:
    return " ".join(as_list(service.get("command", [])))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def only_these_esco_variables(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The process's ESCO_* variables become exactly the ESCO_* ones of ``env``."""
    for key in list(os.environ):
        if key.startswith("ESCO_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("ESCO_"):
            monkeypatch.setenv(key, value)


def settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> IngestSettings:
    """IngestSettings from exactly these variables (the process's ESCO_* and any .env are ignored)."""
    only_these_esco_variables(monkeypatch, env)
    return IngestSettings(_env_file=None)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("ESCO_"):
            monkeypatch.delenv(key)
    return monkeypatch


# --- one pinned Qdrant image -------------------------------------------------------------------------
def test_pinned_tag_is_a_release_not_latest() -> None:
    assert QDRANT_IMAGE == f"qdrant/qdrant:{QDRANT_TAG}"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", QDRANT_TAG), QDRANT_TAG


@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_compose_files_use_the_pinned_qdrant_image(path: Path) -> None:
    services = qdrant_services(load(path))
    assert services, f"no qdrant/qdrant service in {path}"
    for name, svc in services.items():
        assert svc["image"] == QDRANT_IMAGE, f"{path.name}:{name} uses {svc['image']}, expected {QDRANT_IMAGE}"
    text = path.read_text()
    for image in re.findall(r"qdrant/qdrant:[\w.\-]+", text):
        assert image == QDRANT_IMAGE, f"{path.name} mentions {image}"


def test_helm_values_use_the_pinned_qdrant_image() -> None:
    values = load(K8S / "qdrant-values.yaml")
    assert values["image"]["repository"].endswith("qdrant/qdrant")
    assert values["image"]["tag"] == QDRANT_TAG


def test_docs_name_the_pinned_tag_only() -> None:
    for tag in re.findall(r"qdrant/qdrant:(v[\w.\-]+)", DOCS.read_text()):
        assert tag == QDRANT_TAG


# --- ports and healthchecks ------------------------------------------------------------------------
def test_compose_qdrant_publishes_rest_and_grpc() -> None:
    (svc,) = qdrant_services(load(COMPOSE)).values()
    assert {6333, 6334} <= container_ports(svc)
    assert any(v.endswith(":/qdrant/storage") for v in svc["volumes"])
    named = [v.split(":")[0] for v in svc["volumes"] if v.endswith(":/qdrant/storage")]
    assert named[0] in load(COMPOSE)["volumes"], "the storage must be a named volume"


def test_cluster_node_1_publishes_rest_and_grpc() -> None:
    assert {6333, 6334} <= container_ports(load(CLUSTER)["services"]["qdrant-1"])


@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_qdrant_healthchecks_work_in_the_qdrant_image(path: Path) -> None:
    for name, svc in qdrant_services(load(path)).items():
        hc = svc.get("healthcheck")
        assert hc and hc.get("test"), f"{path.name}:{name} has no healthcheck"
        test = " ".join(as_list(hc["test"]))
        # the image has bash but neither curl nor wget
        assert "curl" not in test and "wget" not in test, test
        assert "/dev/tcp/127.0.0.1/6333" in test and "/readyz" in test
        # compose interpolates $VAR itself: shell variables must be written $$VAR
        assert not re.search(r"(?<!\$)\$(?!\$)[{A-Za-z_]", test.replace("$$", "")), test


@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_api_keys_are_optional_and_never_set_empty(path: Path) -> None:
    """Qdrant <= v1.16 treats QDRANT__SERVICE__API_KEY="" as a key; the command exports only given keys."""
    for name, svc in qdrant_services(load(path)).items():
        env = env_dict(svc)
        assert "QDRANT__SERVICE__API_KEY" not in env and "QDRANT__SERVICE__READ_ONLY_API_KEY" not in env
        assert interpolate(env["QDRANT_API_KEY"]) == "" and interpolate(env["QDRANT_READ_ONLY_API_KEY"]) == ""
        cmd = interpolate(command_text(svc))
        for var, source in [("QDRANT__SERVICE__API_KEY", "QDRANT_API_KEY"),
                            ("QDRANT__SERVICE__READ_ONLY_API_KEY", "QDRANT_READ_ONLY_API_KEY")]:
            assert f'if [ -n "${{{source}}}" ]; then export {var}="${{{source}}}"; fi' in cmd, name


# --- the worker ------------------------------------------------------------------------------------
def test_every_esco_variable_in_the_deploy_files_is_a_setting() -> None:
    files = [COMPOSE, CLUSTER, DOCKERFILE, *sorted(K8S.glob("*.yaml"))]
    for path in files:
        for var in _ESCO_VAR.findall(path.read_text()):
            assert var in VALID_ESCO_VARS, f"{path.relative_to(ROOT)} uses {var}, not a field of IngestSettings or ServiceSettings"


def test_every_esco_variable_in_the_docs_is_a_setting() -> None:
    for var in _ESCO_VAR.findall(DOCS.read_text()):
        assert var in VALID_ESCO_VARS | TEST_ONLY_VARS, f"docs/deploy.md names {var}, not a setting"


@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_compose_worker_is_a_one_shot_job_after_a_healthy_qdrant(path: Path) -> None:
    compose = load(path)
    w = worker(compose)
    assert w.get("profiles") or w.get("restart") == "no"
    assert w["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (path.parent / w["build"]["context"] / w["build"]["dockerfile"]).resolve() == DOCKERFILE
    deps = w["depends_on"]
    for name in qdrant_services(compose):
        assert deps[name]["condition"] == "service_healthy"
    assert as_list(w["entrypoint"])[0] in console_scripts()
    args = [interpolate(a) for a in as_list(w["command"])]
    assert args[0] == "--release" and args[1].startswith("/releases/") and "--language" in args
    volumes = [interpolate(v) for v in w["volumes"]]
    assert any(v.endswith(":/releases:ro") for v in volumes), volumes
    hf_home = env_dict(w)["HF_HOME"]
    cache = [v for v in volumes if v.split(":")[1] == hf_home]
    assert cache and cache[0].split(":")[0] in compose["volumes"], "the model cache must be a named volume"


def test_compose_worker_settings_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: interpolate(v) for k, v in env_dict(worker(load(COMPOSE))).items()}
    s = settings_from_env(monkeypatch, env)
    assert s.qdrant_url == "http://qdrant:6333" and s.store_kind == "server"
    # QDRANT_API_KEY unset -> ESCO_QDRANT_API_KEY="": falsy, so the store sends no api-key header
    assert not s.qdrant_api_key


def test_compose_worker_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: interpolate(v) for k, v in env_dict(worker(load(COMPOSE))).items()}
    env["ESCO_QDRANT_API_KEY"] = "k-123456"
    s = settings_from_env(monkeypatch, env)
    assert s.qdrant_api_key is not None and s.qdrant_api_key.get_secret_value() == "k-123456"


def test_cluster_has_three_nodes_in_distributed_mode() -> None:
    nodes = qdrant_services(load(CLUSTER))
    assert sorted(nodes) == ["qdrant-1", "qdrant-2", "qdrant-3"]
    for name, svc in nodes.items():
        env = env_dict(svc)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
        storage = [v.split(":")[0] for v in svc["volumes"] if v.endswith(":/qdrant/storage")]
        assert storage == [f"{name}-storage"], f"{name} needs its own storage volume"
    first = command_text(nodes["qdrant-1"])
    assert "./qdrant --uri http://qdrant-1:6335" in first and "--bootstrap" not in first
    for name in ("qdrant-2", "qdrant-3"):
        cmd = command_text(nodes[name])
        assert f"./qdrant --bootstrap http://qdrant-1:6335 --uri http://{name}:6335" in cmd
        assert nodes[name]["depends_on"]["qdrant-1"]["condition"] == "service_healthy"


def test_cluster_worker_settings_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: interpolate(v) for k, v in env_dict(worker(load(CLUSTER))).items()}
    s = settings_from_env(monkeypatch, env)
    assert s.qdrant_url == "http://qdrant-1:6333"
    assert s.shard_number is not None and s.shard_number >= 3
    assert s.replication_factor == 2
    assert s.write_consistency_factor is not None and s.write_consistency_factor <= s.replication_factor
    assert s.quantization == "int8" and s.on_disk_vectors is True


def test_cluster_worker_with_too_high_write_consistency_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: interpolate(v) for k, v in env_dict(worker(load(CLUSTER))).items()}
    env["ESCO_WRITE_CONSISTENCY_FACTOR"] = "3"
    with pytest.raises(ValidationError, match="ESCO_WRITE_CONSISTENCY_FACTOR=3 exceeds"):
        settings_from_env(monkeypatch, env)


def test_worker_args_parse_with_the_real_cli() -> None:
    """The args of both compose workers, the Job and the CronJob are accepted by esco-ingest's parser."""
    from ingest.cli import _parser as make_parser  # a broken or renamed CLI fails here: no skip
    (cm,) = k8s_kind("ConfigMap")
    arg_lists = [[interpolate(a) for a in as_list(worker(load(p))["command"])] for p in (COMPOSE, CLUSTER)]
    for _, pod in _pod_specs():
        arg_lists.append([re.sub(r"\$\(([A-Z0-9_]+)\)", lambda m: str(cm["data"][m.group(1)]), a)
                          for a in pod["containers"][0]["args"]])
    for args in arg_lists:
        ns = make_parser().parse_args(args)
        assert ns.release == ["/releases/v1.1.1"] and ns.language == ["en"], args


# --- the image -------------------------------------------------------------------------------------
def test_dockerfile_builds_torch_first_then_the_project() -> None:
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    args = [rest for word, rest in ins if word == "ARG"]
    assert any(a.startswith("PYTHON_IMAGE=python:3.11-slim") for a in args)
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    assert any(a.startswith("TORCH_VARIANT=cpu") for a in args)
    runs = [rest for word, rest in ins if word == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "download.pytorch.org/whl/${TORCH_VARIANT}" in r)
    assert "--index-url" in runs[torch_at] and "torch" in runs[torch_at]
    project = r"pip install (--\S+ \S+ )*(\.|\"\.\$\{EXTRAS\S*\")(\s|$)"  # `.`, or `".${EXTRAS:+...}"`
    project_at = next(i for i, r in enumerate(runs) if re.search(project, r))
    assert torch_at < project_at, "torch must be installed before the project"
    assert "--constraint" in runs[project_at], "the project install must keep the torch build"


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    ins = dockerfile_instructions()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entry = [rest for word, rest in ins if word == "ENTRYPOINT"]
    assert entry == ['["esco-ingest"]']
    assert "esco-ingest" in console_scripts()
    envs = " ".join(rest for word, rest in ins if word == "ENV")
    assert "HF_HOME=/cache/huggingface" in envs


def test_dockerfile_copies_what_the_package_needs() -> None:
    sources = {rest.split()[0] for word, rest in dockerfile_instructions() if word == "COPY" and "--from" not in rest}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include, "pyproject.toml names no packages"
    for top in {p.split(".")[0].rstrip("*") for p in include}:
        assert top in sources, f"deploy/Dockerfile does not COPY the package {top}/"
    assert "pyproject.toml" in sources


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for must in (".git", ".venv", "**/__pycache__", ".models", "qdrant_storage", "tests/data"):
        assert must in patterns, must
    for needed in ("search", "ingest", "pyproject.toml", "README.md", "deploy", "deploy/Dockerfile"):
        assert needed not in patterns, f".dockerignore excludes {needed}, which the build needs"


# --- Kubernetes ------------------------------------------------------------------------------------
def test_k8s_files_parse_and_kustomization_lists_existing_files() -> None:
    kust = load(K8S / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    for res in kust["resources"]:
        assert (K8S / res).is_file(), res
    # the example Secret is applied by hand, once: `apply -k` must not reset real keys to placeholders
    assert "secret.example.yaml" not in kust["resources"]
    kinds = {d["kind"] for d in k8s_docs()}
    assert {"Job", "CronJob", "ConfigMap", "Secret", "PersistentVolumeClaim", "Kustomization"} <= kinds


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = [("Job", j["spec"]["template"]["spec"]) for j in k8s_kind("Job")]
    out += [("CronJob", c["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for c in k8s_kind("CronJob")]
    return out


def test_k8s_worker_reads_the_read_write_key_from_the_secret() -> None:
    (secret,) = k8s_kind("Secret")
    specs = _pod_specs()
    assert len(specs) == 2
    for kind, pod in specs:
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c.get("env", [])}
        ref = env["ESCO_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert "value" not in env["ESCO_QDRANT_API_KEY"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] == "api-key" and ref["key"] in secret["stringData"]
        assert c["command"][0] in console_scripts()
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["restartPolicy"] in ("Never", "OnFailure")


def test_no_api_key_literal_in_any_k8s_manifest() -> None:
    for doc in k8s_docs():
        if doc["kind"] == "Secret":
            continue
        for kind, pod in _pod_specs():
            for c in pod["containers"] + pod.get("initContainers", []):
                for e in c.get("env", []):
                    if "KEY" in e["name"]:
                        assert "valueFrom" in e and "value" not in e, (kind, e)
    for (cm,) in [k8s_kind("ConfigMap")]:
        assert not any("API_KEY" in k for k in cm["data"]), "API keys belong in the Secret"


def test_k8s_job_and_cronjob_policies() -> None:
    (job,) = k8s_kind("Job")
    assert job["apiVersion"] == "batch/v1"
    assert isinstance(job["spec"]["backoffLimit"], int)
    assert "concurrencyPolicy" not in job["spec"], "Jobs have no concurrencyPolicy (CronJobs do)"
    (cron,) = k8s_kind("CronJob")
    assert cron["apiVersion"] == "batch/v1"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_k8s_configmap_settings_validate_and_feed_the_args(monkeypatch: pytest.MonkeyPatch) -> None:
    (cm,) = k8s_kind("ConfigMap")
    data = {k: str(v) for k, v in cm["data"].items()}
    for kind, pod in _pod_specs():
        (c,) = pod["containers"]
        assert c["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
        for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(c["args"])):
            assert ref in data, f"{kind} args use $({ref}), which the ConfigMap does not define"
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/releases", data["HF_HOME"]} <= mounts
    s = settings_from_env(monkeypatch, {**data, "ESCO_QDRANT_API_KEY": "from-the-secret"})
    assert s.qdrant_url and s.replication_factor and s.write_consistency_factor
    assert s.write_consistency_factor <= s.replication_factor


def test_k8s_image_is_the_compose_worker_image() -> None:
    compose_image = worker(load(COMPOSE))["image"].split(":")[0]
    for _, pod in _pod_specs():
        assert pod["containers"][0]["image"].split(":")[0].endswith(compose_image)


def test_helm_values_cluster_and_keys_from_the_secret() -> None:
    values = load(K8S / "qdrant-values.yaml")
    (secret,) = k8s_kind("Secret")
    assert values["replicaCount"] == 3
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["p2p"]["port"] == 6335
    assert re.fullmatch(r"\d+Gi", values["persistence"]["size"])
    assert values["resources"]["requests"]["memory"] and values["resources"]["limits"]["memory"]
    for field, key in (("apiKey", "api-key"), ("readOnlyApiKey", "read-only-api-key")):
        ref = values[field]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": key}
        assert key in secret["stringData"]


def test_the_worker_url_names_the_helm_service() -> None:
    (cm,) = k8s_kind("ConfigMap")
    # helm install qdrant ... -> Service "qdrant"
    assert cm["data"]["ESCO_QDRANT_URL"] == "http://qdrant:6333"
    assert "helm upgrade --install qdrant qdrant/qdrant" in DOCS.read_text()


# --- the real tools, where installed ---------------------------------------------------------------
def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["compose", "cluster"])
def test_docker_compose_config_accepts_the_file(path: Path, tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "INGEST_", "ESCO_", "COMPOSE_"))}
    result = subprocess.run([*cli, "-f", str(path), "--profile", "ingest", "config"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)
    if result.returncode != 0 and "unknown flag: --profile" in result.stderr + result.stdout:
        result = subprocess.run([*cli, "-f", str(path), "config"], capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert "ingest" in rendered["services"]


def test_kubectl_kustomize_renders_the_manifests() -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job",
                                               "PersistentVolumeClaim", "PersistentVolumeClaim", "Service"]
    assert {d["metadata"]["namespace"] for d in docs} == {"esco-skill-search"}


# --- settings the deploy files rely on -------------------------------------------------------------
def test_write_consistency_above_replication_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="ESCO_WRITE_CONSISTENCY_FACTOR=3 exceeds ESCO_REPLICATION_FACTOR=2"):
        IngestSettings(_env_file=None, qdrant_url="http://q:6333", replication_factor=2, write_consistency_factor=3)
    with pytest.raises(ValidationError, match="exceeds ESCO_REPLICATION_FACTOR=1"):
        IngestSettings(_env_file=None, qdrant_url="http://q:6333", write_consistency_factor=2)


def test_write_consistency_equal_to_replication_is_accepted(clean_env: pytest.MonkeyPatch) -> None:
    s = IngestSettings(_env_file=None, qdrant_url="http://q:6333", shard_number=6, replication_factor=2,
                       write_consistency_factor=2)
    assert (s.shard_number, s.replication_factor, s.write_consistency_factor) == (6, 2, 2)


@pytest.mark.parametrize("field", ["shard_number", "replication_factor", "write_consistency_factor"])
def test_cluster_layout_without_a_server_is_refused(clean_env: pytest.MonkeyPatch, field: str) -> None:
    with pytest.raises(ValidationError, match="need a Qdrant server or cluster"):
        IngestSettings(_env_file=None, **{field: 1})


def test_cluster_layout_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ESCO_QDRANT_URL", "https://qdrant.example.org:6333/")
    clean_env.setenv("ESCO_SHARD_NUMBER", "3")
    clean_env.setenv("ESCO_REPLICATION_FACTOR", "2")
    clean_env.setenv("ESCO_WRITE_CONSISTENCY_FACTOR", "1")
    clean_env.setenv("ESCO_QUANTIZATION", "int8")
    clean_env.setenv("ESCO_ON_DISK_VECTORS", "true")
    clean_env.setenv("ESCO_QDRANT_VERIFY_TLS", "false")
    clean_env.setenv("ESCO_QDRANT_PREFER_GRPC", "true")
    s = IngestSettings(_env_file=None)
    assert s.qdrant_url == "https://qdrant.example.org:6333"
    assert (s.shard_number, s.replication_factor, s.write_consistency_factor) == (3, 2, 1)
    assert s.quantization == "int8" and s.on_disk_vectors and not s.qdrant_verify_tls and s.qdrant_prefer_grpc
    clean_env.setenv("ESCO_WRITE_CONSISTENCY_FACTOR", "5")
    with pytest.raises(ValidationError, match="ESCO_WRITE_CONSISTENCY_FACTOR=5"):
        IngestSettings(_env_file=None)


@pytest.mark.parametrize("cls", [SearchSettings, IngestSettings])
def test_url_and_path_together_are_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path, cls: type) -> None:
    clean_env.setenv("ESCO_QDRANT_URL", "http://localhost:6333")
    clean_env.setenv("ESCO_QDRANT_PATH", str(tmp_path))
    with pytest.raises(ValidationError, match="ESCO_QDRANT_URL and ESCO_QDRANT_PATH are both set"):
        cls(_env_file=None)


@pytest.mark.parametrize("cls", [SearchSettings, IngestSettings])
def test_api_key_without_url_is_refused(clean_env: pytest.MonkeyPatch, cls: type) -> None:
    clean_env.setenv("ESCO_QDRANT_API_KEY", "secret-key-1")
    with pytest.raises(ValidationError, match="ESCO_QDRANT_API_KEY is set but ESCO_QDRANT_URL is not"):
        cls(_env_file=None)


@pytest.mark.parametrize("cls", [SearchSettings, IngestSettings])
def test_api_key_is_not_in_the_error_of_a_refused_key(clean_env: pytest.MonkeyPatch, cls: type) -> None:
    clean_env.setenv("ESCO_QDRANT_API_KEY", "secret-key-1")
    with pytest.raises(ValidationError) as info:
        cls(_env_file=None)
    assert "secret-key-1" not in str(info.value) and "secret-key-1" not in repr(info.value)


def test_url_scheme_is_checked(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        IngestSettings(_env_file=None, qdrant_url="qdrant:6333")


@pytest.mark.parametrize("cls", [SearchSettings, IngestSettings])
def test_api_key_is_never_printed(clean_env: pytest.MonkeyPatch, cls: type) -> None:
    key = "s3cr3t-qdrant-key-7f9a"
    clean_env.setenv("ESCO_QDRANT_URL", "https://qdrant.example.org")
    clean_env.setenv("ESCO_QDRANT_API_KEY", key)
    s = cls(_env_file=None)
    assert s.qdrant_api_key is not None and s.qdrant_api_key.get_secret_value() == key
    shown = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()), repr(s.model_dump()), s.describe_store(),
             f"{s}", f"{s!r}", str(s.qdrant_api_key), repr(s.qdrant_api_key)]
    for text in shown:
        assert key not in text


def test_api_key_is_never_in_a_validation_error(clean_env: pytest.MonkeyPatch) -> None:
    key = "s3cr3t-qdrant-key-7f9a"
    with pytest.raises(ValidationError) as info:
        IngestSettings(_env_file=None, qdrant_url="http://q:6333", qdrant_api_key=key, replication_factor=1,
                       write_consistency_factor=2)
    assert key not in str(info.value) and key not in repr(info.value)


# --- the search service (search-api: compose and Kubernetes) ----------------------------------------
def search_api(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]["search-api"]


def serve_args(args: list[str]) -> Any:
    """``args`` parsed by the real ``esco-search serve`` parser."""
    import argparse

    from search.http.server import add_parser

    parser = argparse.ArgumentParser(prog="esco-search")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(args)


def service_settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[SearchSettings, ServiceSettings]:
    only_these_esco_variables(monkeypatch, env)
    return SearchSettings(_env_file=None), ServiceSettings(_env_file=None)  # type: ignore[call-arg]


def test_compose_search_api_serves_with_the_read_only_key_after_a_healthy_qdrant(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load(COMPOSE)
    svc = search_api(compose)
    assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "serve" in interpolate(svc["build"]["args"]["EXTRAS"]).split(","), "the image needs the serve extra"
    assert svc["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert svc.get("restart") == "unless-stopped" and "profiles" not in svc
    assert as_list(svc["entrypoint"]) == ["esco-search"] and "esco-search" in console_scripts()
    ns = serve_args([interpolate(a) for a in as_list(svc["command"])])
    assert ns.command == "serve" and ns.host == "0.0.0.0"
    assert container_ports(svc) == {ns.port}
    env = env_dict(svc)
    assert env["ESCO_QDRANT_API_KEY"] == "${QDRANT_READ_ONLY_API_KEY:-}", "the service reads with the read-only key"
    assert env["HF_HOME"] == env_dict(worker(compose))["HF_HOME"]
    cache = [v for v in svc["volumes"] if v.split(":")[1] == env["HF_HOME"]]
    assert cache and cache[0].split(":")[0] in compose["volumes"]
    search, service = service_settings_from_env(monkeypatch, {k: interpolate(v) for k, v in env.items()})
    assert search.qdrant_url == "http://qdrant:6333" and not search.qdrant_api_key
    assert service.api_keys == () and service.cors_origins == ()  # open and CORS off unless configured
    for key, value in (("ESCO_QDRANT_API_KEY", "ro-key-123456"), ("ESCO_SERVICE_API_KEYS", "client-key-1,client-key-2")):
        monkeypatch.setenv(key, value)
    assert SearchSettings(_env_file=None).qdrant_api_key.get_secret_value() == "ro-key-123456"  # type: ignore[union-attr]
    assert [k.get_secret_value() for k in ServiceSettings(_env_file=None).api_keys] == ["client-key-1", "client-key-2"]


def test_compose_search_api_healthcheck_asks_readyz_with_what_the_image_has() -> None:
    svc = search_api(load(COMPOSE))
    test = as_list(svc["healthcheck"]["test"])
    assert test[:2] == ["CMD", "python"], "the image has python but neither curl nor wget"
    code = test[-1]
    port = serve_args([interpolate(a) for a in as_list(svc["command"])]).port
    assert f"http://127.0.0.1:{port}/readyz" in code
    compile(code, "healthcheck", "exec")
    assert "$" not in code
    assert svc["healthcheck"]["start_period"].endswith("s"), "the model loads before /readyz answers 200"


def _deployment() -> dict[str, Any]:
    (dep,) = k8s_kind("Deployment")
    return dep


def test_k8s_search_api_reads_with_the_read_only_key_and_no_literal_key() -> None:
    (secret,) = k8s_kind("Secret")
    pod = _deployment()["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["ESCO_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "read-only-api-key"}
    assert ref["key"] in secret["stringData"]
    clients = env["ESCO_SERVICE_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert clients["name"] == secret["metadata"]["name"] and clients["key"] in secret["stringData"]
    assert clients["optional"] is True, "an open service must start without the key"
    for e in c["env"]:
        if "KEY" in e["name"]:
            assert "valueFrom" in e and "value" not in e, e
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_k8s_search_api_probes_port_args_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    (cm,) = k8s_kind("ConfigMap")
    dep = _deployment()
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["esco-search"] and c["command"][0] in console_scripts()
    ns = serve_args(c["args"])
    assert ns.command == "serve" and ns.host == "0.0.0.0" and ns.workers == 1
    (port,) = c["ports"]
    assert port["containerPort"] == ns.port
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["terminationGracePeriodSeconds"] > int(next(e["value"] for e in c["env"]
                                                         if e["name"] == "ESCO_SERVICE_GRACEFUL_TIMEOUT"))
    assert c["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {cm["data"]["HF_HOME"], "/tmp"} <= mounts, "a read-only root needs writable cache and tmp folders"
    env = {k: str(v) for k, v in cm["data"].items()}
    env.update({e["name"]: e["value"] for e in c["env"] if "value" in e})
    env["ESCO_QDRANT_API_KEY"] = "from-the-secret"
    search, service = service_settings_from_env(monkeypatch, env)
    assert search.qdrant_url == "http://qdrant:6333" and search.qdrant_api_key is not None
    assert service.max_batch == 64


def test_k8s_search_api_service_hpa_and_image() -> None:
    dep = _deployment()
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (svc,) = [s for s in k8s_kind("Service") if s["metadata"]["name"] == "esco-search-api"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in c["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    (hpa,) = k8s_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and c["resources"]["requests"]["cpu"], "CPU scaling needs a request"
    compose_image = search_api(load(COMPOSE))["image"].split(":")[0]
    assert c["image"].split(":")[0].endswith(compose_image)
    assert "search-api.yaml" in load(K8S / "kustomization.yaml")["resources"]
