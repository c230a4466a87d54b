"""deploy/k8s as an operator's cluster takes it (issue 24): every pod passes Pod Security
admission's "restricted" profile, the image runs as the user the pods ask for, and
Prometheus's ConfigMap ships every file its configuration loads.

The profile's rules, as Kubernetes documents them (Pod Security Standards, "latest"):
baseline's (no host namespaces, no privileged container, no hostPath volume, no host
port, capabilities added only from baseline's list, seccomp not Unconfined) and
restricted's on top: only the listed volume types, allowPrivilegeEscalation false,
runAsNonRoot true and no runAsUser 0, seccomp RuntimeDefault or Localhost, every
capability dropped (ALL) and none added but NET_BIND_SERVICE.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.test_deploy_manifests import DEPLOY, of_kind, resources

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_ALLOWED = {"RuntimeDefault", "Localhost"}
CAPABILITIES_ADDABLE = {"NET_BIND_SERVICE"}
WORKLOAD_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in resources():
        path = WORKLOAD_PATHS.get(resource["kind"])
        if path is None:
            continue
        spec = resource
        for key in path:
            spec = spec[key]
        yield f"{resource['kind']}/{resource['metadata']['name']}", spec


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key, [])


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the "restricted" Pod Security profile would refuse in this pod spec."""
    found = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            found.append(f"{host} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)} is not allowed")
    pod_context = pod.get("securityContext", {})
    if pod_context.get("runAsUser") == 0:
        found.append("the pod runs as user 0")
    for container in _containers(pod):
        name = container["name"]
        context = container.get("securityContext", {})
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser") == 0:
            found.append(f"{name}: runs as user 0")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        if seccomp.get("type") not in SECCOMP_ALLOWED:
            found.append(f"{name}: seccomp profile {seccomp.get('type')!r}")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        added = set(capabilities.get("add", [])) - CAPABILITIES_ADDABLE
        if added:
            found.append(f"{name}: adds capabilities {sorted(added)}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: a host port")
    return found


@pytest.mark.parametrize("pod", [pytest.param(spec, id=name) for name, spec in pod_specs()])
def test_every_pod_passes_the_restricted_pod_security_profile(pod: dict[str, Any]) -> None:
    assert restricted_violations(pod) == []


def test_there_are_pods_to_check_and_the_check_can_fail() -> None:
    specs = dict(pod_specs())
    assert {f"Deployment/{name}" for name in of_kind("Deployment")} <= set(specs)
    broken = copy.deepcopy(specs["Deployment/gateway"])
    broken["hostNetwork"] = True
    broken["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    del broken["securityContext"]
    container = broken["containers"][0]
    container["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}

    found = " ".join(restricted_violations(broken))

    for refused in (
        "hostNetwork",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccomp",
        "drop ALL",
        "SYS_ADMIN",
    ):
        assert refused in found, refused


def test_the_namespace_enforces_the_restricted_profile() -> None:
    labels = of_kind("Namespace")["crm"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_image_runs_as_the_user_the_pods_ask_for() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and uid != "0", "a numeric user, so runAsNonRoot can check it"
    for name, pod in pod_specs():
        assert str(pod["securityContext"]["runAsUser"]) == uid, name


def test_the_root_filesystem_is_read_only_and_tmp_is_writable() -> None:
    for name, pod in pod_specs():
        scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in _containers(pod):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounted = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounted.get("/tmp") in scratch, f"{name}: /tmp is not writable"


def referenced_files(config: dict[str, Any]) -> list[str]:
    """The files a Prometheus configuration loads, relative to its own folder."""
    return [*config.get("rule_files", []), *config.get("scrape_config_files", [])]


def test_the_prometheus_config_map_ships_every_file_the_config_loads() -> None:
    shipped = of_kind("ConfigMap")["prometheus-crm"]["data"]
    config = yaml.safe_load(shipped["prometheus.yml"])
    loaded = referenced_files(config)

    assert loaded == ["alerts.yml"]
    assert [name for name in loaded if name not in shipped] == []
    rules = DEPLOY / "prometheus" / "alerts.yml"
    assert shipped["alerts.yml"] == rules.read_text(), "the rules the suite tests"

