"""deploy/ cannot rot: every manifest parses, runs real commands with real options, and
names only real settings with valid values.

Every command deploy/ runs (compose, Kubernetes, systemd, start scripts; see
deploy_files.py) is checked against the real CLI's command tree, and options passed
through to Celery or Flower against theirs. The workers' liveness probe and
start-flower.sh are also run against a real worker.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from clonequeue.config import known_variables, load_settings
from clonequeue.config.redis_urls import SENTINEL_PORT, parse_sentinel_url
from clonequeue.dispatch.queues import QueueNames
from clonequeue.errors import ConfigError
from clonequeue.local import ManagedProcess, free_port, port_answers
from tests.integration.deploy_files import (
    COMPOSE_FILE,
    COMPOSE_SENTINEL_FILE,
    DEPLOY,
    K8S,
    ROOT,
    SCRIPTS,
    SYSTEMD,
    Invocation,
    by_kind_and_name,
    check_invocation,
    clonequeue_invocations,
    compose,
    env_file,
    k8s_base,
    k8s_objects,
    k8s_sentinel,
    logical_lines,
    parse_unit,
    pod_containers,
    script_references,
    sentinel_monitors,
    shell_words,
    unit_values,
    workloads,
    yaml_documents,
)

DOCKERFILE = DEPLOY / "Dockerfile"
OPERATIONS_DOC = ROOT / "README.md"
ALL_QUEUES = {"submit", "produce", "poll"}
VENV_BIN = Path(sys.executable).parent
SETTING_NAME = re.compile(r"\bCLONEQUEUE_[A-Z0-9_]+\b")


def test_every_clonequeue_command_in_deploy_exists_with_its_options() -> None:
    invocations = clonequeue_invocations()
    used = {check_invocation(invocation) for invocation in invocations}
    # The collection itself works: every process deploy/ runs was found.
    assert used >= {"worker", "beat", "flower", "exporter", "inspect", "simulator"}, used


def test_the_command_checker_catches_rot() -> None:
    for words in (
        ["wroker"],
        ["worker", "--queus", "poll"],
        ["worker", "--not-a-celery-option"],
        ["exporter", "--metrics-port", "1"],
        ["flower", "--not_a_flower_option=1"],
        ["inspect", "pingg"],
        ["config", "shwo"],
    ):
        with pytest.raises(AssertionError):
            check_invocation(Invocation("test", words))


def test_every_start_script_referenced_exists_and_is_in_the_image() -> None:
    references = script_references()
    assert references
    scripts = {path.name for path in SCRIPTS.glob("start-*.sh")}
    for where, name in references:
        assert name in scripts, f"{where}: runs {name}, which deploy/scripts does not have"
    assert {name for _, name in references} == scripts, "a start script nothing runs"
    dockerfile = DOCKERFILE.read_text()
    assert "COPY deploy/scripts/start-*.sh /usr/local/bin/" in dockerfile


# --- the start scripts ------------------------------------------------------------------------


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.sh")), ids=lambda p: p.name)
def test_start_scripts_are_strict_and_end_in_exec(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    lines = logical_lines(text)
    assert lines[0] == "set -o errexit -o nounset", f"{script.name}: strict mode first"
    assert lines[-1].startswith("exec clonequeue "), f"{script.name} must end in exec"
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_flower_waits_for_a_worker_with_celery_inspect_ping() -> None:
    lines = logical_lines((SCRIPTS / "start-flower.sh").read_text())
    ping = [i for i, line in enumerate(lines) if "clonequeue inspect ping" in line]
    flower = [i for i, line in enumerate(lines) if line.startswith("exec clonequeue flower")]
    assert ping, "start-flower.sh does not ping"
    assert flower, "start-flower.sh does not exec flower"
    assert ping[0] < flower[0], "start-flower.sh pings after starting Flower"


def script_variables(name: str) -> set[str]:
    """The variables a start script reads (``${NAME…}``)."""
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (SCRIPTS / name).read_text()))


# --- settings named anywhere in deploy/ -------------------------------------------------------


def deploy_text_files() -> list[Path]:
    """Everything in deploy/ but an operator's own (git-ignored) .env and secrets."""
    local = (DEPLOY / ".env", DEPLOY / "secrets")
    files = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and not any(p == x or x in p.parents for x in local)
    ]
    return [*files, ROOT / ".dockerignore", OPERATIONS_DOC]


def test_every_setting_named_in_deploy_and_the_docs_is_real() -> None:
    known = known_variables()
    seen = set()
    for path in deploy_text_files():
        for name in SETTING_NAME.findall(path.read_text()):
            assert name in known, f"{path.relative_to(ROOT)}: {name} is not a clonequeue setting"
            seen.add(name)
    assert {"CLONEQUEUE_REDIS_URL", "CLONEQUEUE_FLOWER_BASIC_AUTH"} <= seen


def settings_from(values: dict[str, str], where: str) -> None:
    """Build the settings from these CLONEQUEUE_* values: each must be valid."""
    overrides = {
        k.removeprefix("CLONEQUEUE_").lower(): v
        for k, v in values.items()
        if k.startswith("CLONEQUEUE_") and v
    }
    overrides.setdefault("api_token", "placeholder")
    overrides.pop("api_token_file", None)  # a path inside the container
    try:
        load_settings(env_file=None, **overrides)
    except ConfigError as exc:
        pytest.fail(f"{where}: {exc}")


def resolve_compose_defaults(value: str) -> str:
    """``${NAME:-default}`` → default (what compose uses when NAME is unset)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def test_the_settings_in_every_manifest_are_valid_values() -> None:
    configmap = by_kind_and_name(k8s_base(), "ConfigMap", "clonequeue-config")
    settings_from(configmap["data"], "k8s configmap.yaml")
    for name, service in compose()["services"].items():
        environment = {
            k: resolve_compose_defaults(v) for k, v in service.get("environment", {}).items()
        }
        environment.pop("CLONEQUEUE_FLOWER_BASIC_AUTH", None)  # required from deploy/.env
        settings_from(environment, f"compose {name}")
    settings_from(env_file(DEPLOY / "env.example"), "deploy/env.example")
    settings_from(env_file(SYSTEMD / "clonequeue.env.example"), "clonequeue.env.example")


# --- docker compose ---------------------------------------------------------------------------


def compose_queues(service: dict[str, Any]) -> set[str]:
    return set(service["environment"]["QUEUES"].split(","))


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {
        "redis",
        "worker-submit",
        "worker-poll",
        "beat",
        "flower",
        "exporter",
        "simulator",
    }
    # The simulator only for trials.
    assert services["simulator"]["profiles"] == ["trial"]
    assert all("profiles" not in s for n, s in services.items() if n != "simulator")
    # Separate create and poll workers, together consuming every queue.
    assert compose_queues(services["worker-submit"]) == {"submit", "produce"}
    assert compose_queues(services["worker-poll"]) == {"poll"}
    # One beat.
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "deploy" not in services["flower"] or services["flower"]["deploy"]["replicas"] == 1


def test_compose_redis_is_durable_and_never_evicts() -> None:
    command = compose()["services"]["redis"]["command"]
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags["--appendonly"] == "yes"
    assert flags["--appendfsync"] == "everysec"
    assert flags["--maxmemory-policy"] == "noeviction"
    assert compose()["services"]["redis"]["volumes"][0].endswith(":/data")


def test_compose_publishes_only_flower_and_only_on_loopback() -> None:
    services = compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == {"flower"}
    for port in published["flower"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_compose_flower_requires_a_login() -> None:
    flower = compose()["services"]["flower"]
    login = flower["environment"]["CLONEQUEUE_FLOWER_BASIC_AUTH"]
    assert login.startswith("${CLONEQUEUE_FLOWER_BASIC_AUTH:?"), login
    assert flower["command"] == ["start-flower.sh"]


def test_compose_workers_read_the_token_from_a_secret() -> None:
    doc = compose()
    for name in ("worker-submit", "worker-poll"):
        service = doc["services"][name]
        [secret] = service["secrets"]
        assert secret in doc["secrets"]
        assert service["environment"]["CLONEQUEUE_API_TOKEN_FILE"] == f"/run/secrets/{secret}"
        assert "CLONEQUEUE_API_TOKEN" not in service["environment"]
    for name in ("beat", "flower", "exporter", "simulator"):
        assert "secrets" not in doc["services"][name], f"{name} does not need the token"


def test_compose_environment_names_are_read_by_the_scripts() -> None:
    for name, service in compose()["services"].items():
        command = service.get("command") or []
        if not command or not command[0].startswith("start-"):
            continue
        extra = {k for k in service.get("environment", {}) if not k.startswith("CLONEQUEUE_")}
        unread = extra - script_variables(command[0])
        assert not unread, f"compose {name}: {command[0]} does not read {sorted(unread)}"


def test_compose_builds_from_the_dockerfile() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            build = service["build"]
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    return done.returncode == 0


@pytest.mark.parametrize("path", [COMPOSE_FILE, COMPOSE_SENTINEL_FILE], ids=lambda p: p.name)
def test_docker_compose_config_accepts_the_file(path: Path) -> None:
    if not docker_compose_available():
        pytest.skip("no `docker compose` here (the docker CLI's compose plugin is missing)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    command = ["docker", "compose", "-f", str(path), "--profile", "trial", "config"]
    without_login = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert without_login.returncode != 0
    assert "CLONEQUEUE_FLOWER_BASIC_AUTH" in without_login.stderr
    env["CLONEQUEUE_FLOWER_BASIC_AUTH"] = "operator:pw"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert set(yaml.safe_load(done.stdout)["services"]) >= {"worker-submit", "flower"}


# --- the Dockerfile ---------------------------------------------------------------------------


def test_the_image_runs_as_non_root_without_a_dotenv() -> None:
    lines = logical_lines(DOCKERFILE.read_text())
    assert lines[0].startswith("FROM python:3.11")
    [user] = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user not in ("root", "0")
    assert any(line.startswith("RUN pip install . ") for line in lines)
    assert lines[-1] == 'CMD ["start-worker.sh"]'
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for pattern in ("**/.env", ".venv/", ".git/", "deploy/secrets/", "tests/"):
        assert pattern in ignored, pattern


# --- Kubernetes -------------------------------------------------------------------------------


def test_every_k8s_file_parses_and_the_base_lists_its_files() -> None:
    objects = k8s_objects()
    assert all("apiVersion" in doc and "kind" in doc for _, doc in objects)
    kustomization = yaml_documents(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    top_level = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == top_level - {"secret.example.yaml"}, "secret.example.yaml stays out"
    assert {i["name"] for i in kustomization["images"]} == {"clonequeue"}


K8S_BUILDS = [pytest.param(k8s_base, id="base"), pytest.param(k8s_sentinel, id="sentinel")]


@pytest.mark.parametrize("build", K8S_BUILDS)
def test_k8s_selectors_match_their_pods(build: Any) -> None:
    objects = build()
    pod_labels = []
    for workload in workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
        pod_labels.append((workload, labels))
        # Service links would inject *_PORT variables; see the manifests' comments.
        assert workload["spec"]["template"]["spec"]["enableServiceLinks"] is False
    for service in (o for o in objects if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        assert not name.upper().replace("-", "_").startswith("CLONEQUEUE_"), name
        matches = [
            w for w, labels in pod_labels if service["spec"]["selector"].items() <= labels.items()
        ]
        assert len(matches) == 1, name
        ports = {p["name"] for c in pod_containers(matches[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{name}: no container port {port['targetPort']}"
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for _, labels in pod_labels)


@pytest.mark.parametrize("build", K8S_BUILDS)
def test_k8s_secrets_and_config_references_exist(build: Any) -> None:
    objects = build()
    [secret] = [doc for _, doc in k8s_objects() if doc["kind"] == "Secret"]
    secret_keys = set(secret["stringData"])
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for workload in workloads(objects):
        spec = workload["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == secret["metadata"]["name"]
                assert {i["key"] for i in volume["secret"]["items"]} <= secret_keys
        for container in spec["containers"]:
            for ref in container.get("envFrom", []):
                assert ref["configMapRef"]["name"] in configmaps
            for env in container.get("env", []):
                key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    assert key_ref["name"] == secret["metadata"]["name"]
                    assert key_ref["key"] in secret_keys


def k8s_workers() -> list[dict[str, Any]]:
    return [
        w
        for w in workloads(k8s_base())
        if pod_containers(w)[0].get("command") == ["start-worker.sh"]
    ]


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_k8s_workers_split_the_queues_and_read_the_token_file() -> None:
    workers = k8s_workers()
    assert {w["metadata"]["name"] for w in workers} == {"worker-submit", "worker-poll"}
    consumed: list[str] = []
    for worker in workers:
        [container] = pod_containers(worker)
        env = container_env(container)
        consumed += env["QUEUES"].split(",")
        token_file = Path(env["CLONEQUEUE_API_TOKEN_FILE"])
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(token_file.parent) in mounts
        assert "CLONEQUEUE_API_TOKEN" not in env
    assert sorted(consumed) == sorted(ALL_QUEUES), "each queue consumed by exactly one worker"


def liveness_probe(worker: dict[str, Any]) -> list[str]:
    command: list[str] = pod_containers(worker)[0]["livenessProbe"]["exec"]["command"]
    return command


def test_k8s_worker_liveness_is_celery_inspect_ping_of_itself() -> None:
    for worker in k8s_workers():
        probe = liveness_probe(worker)
        assert probe[:2] == ["sh", "-c"]
        words = shell_words(probe[2])
        assert words[:3] == ["clonequeue", "inspect", "ping"]
        assert words[words.index("--destination") + 1] == "celery@$HOSTNAME"


def test_k8s_environment_names_are_read_by_the_scripts() -> None:
    for workload in workloads(k8s_base()):
        for container in pod_containers(workload):
            command = container.get("command") or []
            if not command or not command[0].startswith("start-"):
                continue
            extra = {k for k in container_env(container) if not k.startswith("CLONEQUEUE_")}
            unread = extra - script_variables(command[0])
            assert not unread, f"{workload['metadata']['name']}: {sorted(unread)} unread"


def test_k8s_beat_is_a_single_replica_that_is_never_doubled() -> None:
    beat = by_kind_and_name(k8s_base(), "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_flower_is_internal_and_logs_in() -> None:
    objects = k8s_base()
    service = by_kind_and_name(objects, "Service", "flower")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert all(o["kind"] != "Ingress" for o in objects), "exposing Flower is the operator's call"
    flower = by_kind_and_name(objects, "Deployment", "flower")
    [container] = pod_containers(flower)
    assert container["command"] == ["start-flower.sh"]
    login = container_env(container)["CLONEQUEUE_FLOWER_BASIC_AUTH"]
    assert login["secretKeyRef"]["key"] == "flower-basic-auth"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    policy = by_kind_and_name(objects, "NetworkPolicy", "flower")
    assert policy["spec"]["ingress"], "who may reach Flower is spelled out"


def test_k8s_redis_is_durable_and_never_evicts() -> None:
    redis = by_kind_and_name(k8s_base(), "StatefulSet", "redis")
    args = pod_containers(redis)[0]["args"]
    flags = dict(zip(args[0::2], args[1::2], strict=True))
    assert flags["--appendonly"] == "yes"
    assert flags["--appendfsync"] == "everysec"
    assert flags["--maxmemory-policy"] == "noeviction"
    assert "--maxmemory" in flags
    assert redis["spec"]["volumeClaimTemplates"]


# --- the Sentinel setups (docker-compose.sentinel.yml, k8s/sentinel) -------------------------


def check_sentinel_settings(
    env: dict[str, str], sentinels: dict[str, str], redis_replicas: int, where: str
) -> None:
    """The fleet's settings are valid, list every sentinel (host → its config text) and
    name the master they monitor, whose quorum is a majority."""
    settings_from(env, where)
    url = env["CLONEQUEUE_REDIS_URL"]
    assert "CLONEQUEUE_BROKER_URL" not in env, f"{where}: the broker follows REDIS_URL"
    parsed = parse_sentinel_url(url)
    assert sorted(host for host, _ in parsed.sentinels) == sorted(sentinels), where
    assert {port for _, port in parsed.sentinels} == {SENTINEL_PORT}, where
    assert len(sentinels) >= 3, f"{where}: at least 3 sentinels"
    assert len(sentinels) % 2 == 1, f"{where}: an odd number of sentinels"
    master = env["CLONEQUEUE_SENTINEL_MASTER"]
    for host, text in sentinels.items():
        [(name, _, port, quorum)] = sentinel_monitors(text)
        assert name == master, f"{where}: {host} monitors {name!r}, the fleet asks for {master!r}"
        assert port == "6379", where
        assert len(sentinels) // 2 < int(quorum) <= len(sentinels), f"{where}: quorum {quorum}"
    min_replicas = int(env["CLONEQUEUE_REDIS_MIN_REPLICAS"])
    # Claims wait for a replica, and one replica down does not stop creates.
    assert 1 <= min_replicas <= redis_replicas - 1, f"{where}: MIN_REPLICAS {min_replicas}"


def redis_flags(words: list[str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for word in words:
        if word.startswith("--"):
            flags[word] = []
            current = flags[word]
        elif flags:
            current.append(word)
    return flags


def check_durable(flags: dict[str, list[str]], where: str) -> None:
    assert flags["--appendonly"] == ["yes"], where
    assert flags["--appendfsync"] == ["everysec"], where
    assert flags["--maxmemory-policy"] == ["noeviction"], where
    # an old master woken from a hang refuses writes its demotion would drop
    assert flags["--min-replicas-to-write"] in (["1"], ['"1"']), where
    assert flags["--min-replicas-max-lag"] in (["10"], ['"10"']), where


def test_compose_sentinel_setup_agrees_with_itself() -> None:
    doc = compose(COMPOSE_SENTINEL_FILE)
    services = doc["services"]
    base = set(compose()["services"]) - {"redis"}
    sentinels = {n: s for n, s in services.items() if n.startswith("sentinel-")}
    redises = {n: s for n, s in services.items() if n.startswith("redis-")}
    assert set(services) == base | set(sentinels) | set(redises)
    assert len(redises) == 3
    assert len(sentinels) == 3
    texts = {name: " ".join(s["command"]) for name, s in sentinels.items()}
    [(_, first_master, _, _)] = sentinel_monitors(texts["sentinel-0"])
    for name, service in redises.items():
        flags = redis_flags(service["command"][1:])
        check_durable(flags, name)
        assert flags["--replica-announce-ip"] == [name]
        if name == first_master:
            assert "--replicaof" not in flags
        else:
            assert flags["--replicaof"] == [first_master, "6379"], name
    for name, service in sentinels.items():
        assert service["environment"]["SENTINEL_HOST"] == name  # what it announces
        assert "sentinel announce-ip $$SENTINEL_HOST" in texts[name]
        assert service["command"][-1].strip().endswith("exec redis-sentinel /data/sentinel.conf")
        assert service["volumes"][0].endswith(":/data"), "its config survives a restart"
        done = subprocess.run(["sh", "-n", "-c", service["command"][2]], capture_output=True)
        assert done.returncode == 0, done.stderr
    clonequeue = {n: s for n, s in services.items() if n in base and n != "simulator"}
    assert clonequeue, "the fleet's services"
    for name, service in clonequeue.items():
        env = {k: resolve_compose_defaults(v) for k, v in service["environment"].items()}
        env.pop("CLONEQUEUE_FLOWER_BASIC_AUTH", None)
        check_sentinel_settings(env, texts, len(redises) - 1, f"compose sentinel {name}")
        assert set(service["depends_on"]) == set(sentinels), name


def test_k8s_sentinel_overlay_agrees_with_itself() -> None:
    objects = k8s_sentinel()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("StatefulSet", "redis") not in kinds
    assert ("Service", "redis") not in kinds
    redis = by_kind_and_name(objects, "StatefulSet", "redis-ha")
    sentinel = by_kind_and_name(objects, "StatefulSet", "sentinel")
    scripts = by_kind_and_name(objects, "ConfigMap", "redis-sentinel-scripts")["data"]
    for name, text in scripts.items():
        done = subprocess.run(["sh", "-n", "-c", text], capture_output=True)
        assert done.returncode == 0, (name, done.stderr)
    config = by_kind_and_name(objects, "ConfigMap", "clonequeue-config")["data"]
    [redis_container] = pod_containers(redis)
    [sentinel_container] = pod_containers(sentinel)
    sentinel_env = container_env(sentinel_container)
    master = config["CLONEQUEUE_SENTINEL_MASTER"]
    assert container_env(redis_container)["MASTER_NAME"] == master
    assert sentinel_env["MASTER_NAME"] == master
    # The script's monitor line, with the pod's variables filled in.
    text = scripts["sentinel.sh"].replace("$MASTER_NAME", master)
    text = text.replace("$QUORUM", sentinel_env["QUORUM"]).replace("$master", "redis-ha-0")
    service = sentinel["spec"]["serviceName"]
    hosts = {f"sentinel-{i}.{service}": text for i in range(sentinel["spec"]["replicas"])}
    check_sentinel_settings(config, hosts, redis["spec"]["replicas"], "k8s sentinel")
    assert redis["spec"]["replicas"] == 3
    # Each finds the master by the others' names, else the first Redis; all by their
    # headless Services, which list pods before they are ready.
    find = scripts["find-master.sh"]
    first = f"redis-ha-0.{redis['spec']['serviceName']}"
    assert find.strip().endswith(f"echo {first}")
    assert f"sentinel-$i.{service}" in find
    assert f"for i in {' '.join(str(i) for i in range(len(hosts)))}; do" in find
    for name in (redis["spec"]["serviceName"], service):
        headless = by_kind_and_name(objects, "Service", name)["spec"]
        assert headless["clusterIP"] == "None"
        assert headless["publishNotReadyAddresses"]
    words = shell_words(" ".join(logical_lines(scripts["redis.sh"])))
    check_durable(redis_flags(words), "redis.sh")
    assert redis["spec"]["volumeClaimTemplates"], "the Redis data is on volumes"


def test_k8s_autoscaling_example_targets_the_submit_queue() -> None:
    [hpa] = [doc for _, doc in k8s_objects() if doc["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    by_kind_and_name(k8s_base(), target["kind"], target["name"])
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "clonequeue_queue_depth"
    assert '"clonequeue_queue_depth"' in (ROOT / "clonequeue" / "metrics.py").read_text()
    namespace = by_kind_and_name(k8s_base(), "ConfigMap", "clonequeue-config")["data"][
        "CLONEQUEUE_NAMESPACE"
    ]
    queue = metric["external"]["metric"]["selector"]["matchLabels"]["queue"]
    assert queue == QueueNames.for_namespace(namespace).submit


# --- Prometheus alerts ------------------------------------------------------------------------


def defined_metric_names() -> set[str]:
    """Metric names clonequeue and Flower define (from their sources)."""
    import flower.events

    ours = (ROOT / "clonequeue" / "metrics.py").read_text()
    names = set(re.findall(r'"(clonequeue_[a-z0-9_]+)"', ours))
    names |= set(re.findall(r"'(flower_[a-z_]+)'", Path(flower.events.__file__).read_text()))
    return names


def test_alert_rules_use_real_metrics_and_are_documented() -> None:
    [doc] = yaml_documents(DEPLOY / "prometheus" / "alerts.yml")
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    defined = defined_metric_names()
    documented = OPERATIONS_DOC.read_text()
    for rule in rules:
        assert rule["alert"].startswith("Clonequeue"), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["action"], rule["alert"]
        for name in re.findall(r"\b((?:clonequeue|flower)_[a-z0-9_]+)", rule["expr"]):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in defined, f"{rule['alert']}: no metric {name}"
        assert f"`{rule['alert']}`" in documented, f"{rule['alert']} is not in the docs"
    if shutil.which("promtool"):
        path = DEPLOY / "prometheus" / "alerts.yml"
        done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_clonequeue_metric_is_documented() -> None:
    documented = OPERATIONS_DOC.read_text()
    for name in sorted(n for n in defined_metric_names() if n.startswith("clonequeue_")):
        assert name in documented, f"README.md does not explain {name}"


# --- systemd ----------------------------------------------------------------------------------


def test_systemd_units_parse_and_define_what_they_expand() -> None:
    units = sorted(SYSTEMD.glob("*.service"))
    assert {p.name for p in units} == {
        "clonequeue-worker@.service",
        "clonequeue-beat.service",
        "clonequeue-flower.service",
        "clonequeue-exporter.service",
    }
    for path in units:
        unit = parse_unit(path)
        assert {"Unit", "Service", "Install"} <= set(unit), path.name
        defaults = {
            item.split("=", 1)[0]
            for value in unit_values(unit, "Environment")
            for item in shlex.split(value)
        }
        for line in unit_values(unit, "ExecStart"):
            for name in re.findall(r"\$\{([A-Z_]+)\}", line):
                assert name in defaults, f"{path.name}: ${{{name}}} has no Environment= default"
        assert unit_values(unit, "User") == ["clonequeue"]


def test_systemd_worker_reads_the_token_as_a_credential() -> None:
    unit = parse_unit(SYSTEMD / "clonequeue-worker@.service")
    [credential] = unit_values(unit, "LoadCredential")
    name = credential.split(":", 1)[0]
    assert f"CLONEQUEUE_API_TOKEN_FILE=%d/{name}" in unit_values(unit, "Environment")


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    copies = []
    for path in sorted(SYSTEMD.glob("*.service")):
        text = path.read_text().replace("/opt/clonequeue/venv/bin/", f"{VENV_BIN}/")
        name = path.name.replace("@.service", "@submit.service")
        (tmp_path / name).write_text(text)
        copies.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert not problems, problems


# --- the probe and the start script, run for real ---------------------------------------------


def flower_healthy(port: int) -> bool:
    try:
        response = urllib3.request(
            "GET", f"http://127.0.0.1:{port}/healthcheck", timeout=5, retries=False
        )
    except urllib3.exceptions.HTTPError:
        return False
    return response.status == 200


@pytest.mark.slow
def test_liveness_probe_and_start_flower_against_a_real_worker(
    tmp_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **tmp_env,
        "PATH": f"{VENV_BIN}{os.pathsep}{tmp_env.get('PATH', '')}",
        "CLONEQUEUE_NAMESPACE": f"t{uuid.uuid4().hex[:8]}",
        "CLONEQUEUE_API_TOKEN": "token-for-a-worker-that-runs-nothing",
    }
    node = f"probe-{uuid.uuid4().hex[:8]}"
    probe = liveness_probe(by_kind_and_name(k8s_base(), "Deployment", "worker-poll"))

    def run_probe(hostname: str, *, timeout_s: int = 10) -> int:
        command = [*probe[:-1], probe[-1].replace("--timeout 10", f"--timeout {timeout_s}")]
        done = subprocess.run(
            command,
            env={**env, "HOSTNAME": hostname},
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        return done.returncode

    flower_port = free_port()
    flower = ManagedProcess(
        [str(SCRIPTS / "start-flower.sh")],
        log_path=tmp_path / "flower.log",
        env={
            **env,
            "ADDRESS": "127.0.0.1",
            "PORT": str(flower_port),
            "WAIT_INTERVAL_S": "0.5",
            "CLONEQUEUE_FLOWER_BASIC_AUTH": "operator:pw",
        },
        cwd=tmp_path,
        name="start-flower.sh",
    )
    worker = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "worker", "-Q", "poll", f"--hostname=celery@{node}"],
        log_path=tmp_path / "worker.log",
        env=env,
        cwd=tmp_path,
        name="worker",
    )
    with flower:
        # No worker yet: Flower waits, and the probe fails.
        flower.wait_ready(line="no worker answers celery inspect ping yet", timeout_s=60)
        assert not port_answers("127.0.0.1", flower_port)
        assert run_probe(node, timeout_s=1) != 0
        with worker:
            worker.wait_ready(line="ready.", timeout_s=90)
            assert run_probe(node) == 0
            assert run_probe(f"other-{node}", timeout_s=1) != 0
            flower.wait_ready(lambda: flower_healthy(flower_port), timeout_s=90)
            assert flower.is_running
            auth = base64.b64encode(b"operator:pw").decode()
            workers = urllib3.request(
                "GET",
                f"http://127.0.0.1:{flower_port}/api/workers",
                headers={"Authorization": f"Basic {auth}"},
                timeout=10,
            )
            assert workers.status == 200
        assert "Visit me at http://127.0.0.1:" in flower.log_tail(200)


def compose_sentinel_config() -> str:
    """The sentinel.conf that docker-compose.sentinel.yml's sentinels write (its printf)."""
    command = compose(COMPOSE_SENTINEL_FILE)["services"]["sentinel-0"]["command"][2]
    lines = re.findall(r"^\s*['\"](.+)['\"] \\$", command, flags=re.M)
    return "\n".join(lines).replace("$$SENTINEL_HOST", "SELF")


def k8s_sentinel_config() -> str:
    """The sentinel.conf that the overlay's sentinel.sh writes (its heredoc)."""
    scripts = by_kind_and_name(k8s_sentinel(), "ConfigMap", "redis-sentinel-scripts")["data"]
    [body] = re.findall(r"<<EOF\n(.*?)\nEOF\n", scripts["sentinel.sh"], flags=re.S)
    sentinel = pod_containers(by_kind_and_name(k8s_sentinel(), "StatefulSet", "sentinel"))[0]
    env = container_env(sentinel)
    text = body.replace("$(hostname).sentinel", "SELF").replace("$master", "redis-ha-0")
    return text.replace("$MASTER_NAME", env["MASTER_NAME"]).replace("$QUORUM", env["QUORUM"])


@pytest.mark.parametrize("config", [compose_sentinel_config, k8s_sentinel_config])
def test_the_sentinel_config_runs_in_a_real_sentinel(config: Any, tmp_path: Path) -> None:
    """redis-server --sentinel accepts the file the setup writes, and finds the master
    (its hosts and ports swapped for a local master and free ports)."""
    import redis as redis_py

    from clonequeue.local import LOCALHOST, EmbeddedRedis
    from clonequeue.local.redis import find_redis_server

    text = config()
    [(name, host, _, _)] = sentinel_monitors(text)
    master = EmbeddedRedis().start(directory=tmp_path / "master")
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    local = text.replace("SELF", LOCALHOST).replace(f"{host} 6379", f"{LOCALHOST} {master.port}")
    local = local.replace("port 26379", f"port {port}")
    conf.write_text(f'{local}\nbind {LOCALHOST}\ndir {tmp_path}\ndaemonize no\nlogfile ""\n')
    executable = find_redis_server()
    assert executable is not None
    sentinel = ManagedProcess(
        [str(executable), str(conf), "--sentinel"], log_path=tmp_path / "sentinel.log"
    )
    try:
        with sentinel:
            sentinel.wait_ready(line="+monitor master", timeout_s=20)
            client = redis_py.Redis(host=LOCALHOST, port=port, decode_responses=True)
            assert client.sentinel_get_master_addr_by_name(name) == (LOCALHOST, master.port)
            client.close()
    finally:
        master.close()
