"""deploy/ is checked like code (issue 15): the Kubernetes manifests against the
Kubernetes API schemas (kubernetes-validate, strict), the compose file against the
compose specification's schema (check-jsonschema's copy), the scrape config by promtool,
and the Grafana dashboards for the panels an on-call engineer opens and for metrics the
platform really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import libs.events.metrics
import libs.platform.app  # noqa: F401  (registers the HTTP metrics)
from services.bootstrap import SERVICES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33"


def resources() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


@pytest.mark.parametrize(
    "resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_validation_can_fail() -> None:
    deployment = next(iter(of_kind("Deployment").values()))
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_service_is_a_deployment_with_probes_requests_secrets_and_a_service() -> None:
    deployments, services = of_kind("Deployment"), of_kind("Service")
    for declared in SERVICES:
        deployment = deployments[declared.name]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", declared.name]
        assert container["ports"] == [{"name": "http", "containerPort": declared.port}]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        env = {e["name"]: e for e in container["env"]}
        for secret in ("DATABASE_URL", "JWT_SECRET"):
            assert "secretKeyRef" in env[secret]["valueFrom"], secret
        assert env["HTTP_PORT"]["value"] == str(declared.port)
        assert services[declared.name]["spec"]["ports"][0]["port"] == declared.port
    # Kafka and PostgreSQL are the operator's: names for them, nothing run here.
    assert services["kafka"]["spec"]["type"] == "ExternalName"
    assert services["postgres"]["spec"]["type"] == "ExternalName"
    assert "StatefulSet" not in {r["kind"] for r in resources()}


def test_every_upstream_url_the_gateway_needs_is_configured() -> None:
    config = of_kind("ConfigMap")["crm-config"]["data"]
    for declared in SERVICES:
        if declared.name != "gateway":
            assert config[f"{declared.env_prefix}_URL"].endswith(f":{declared.port}")


def test_the_kubernetes_scrape_config_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (as .ci/run does)")
    config = yaml.safe_load((K8S / "prometheus.yml").read_text())
    shipped = yaml.safe_load(of_kind("ConfigMap")["prometheus-crm"]["data"]["prometheus.yml"])
    assert shipped == config
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["crm"]}}]
    # Debian's Prometheus is built without Kubernetes discovery, so promtool checks the
    # rest (relabelling, rule files) with static targets in its place.
    job["static_configs"] = [{"targets": ["gateway:8000"]}]
    del job["kubernetes_sd_configs"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    # Beside it, the files it loads as the ConfigMap ships them (the alert rules).
    for key, text in of_kind("ConfigMap")["prometheus-crm"]["data"].items():
        if key != "prometheus.yml":
            (tmp_path / key).write_text(text)

    checked = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_file_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    checked = check_compose(DEPLOY / "docker-compose.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    broken = tmp_path / "docker-compose.yml"
    text = (DEPLOY / "docker-compose.yml").read_text()
    broken.write_text(text.replace("    healthcheck:", "    healthchek:", 1))
    assert check_compose(broken).returncode != 0


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }


def test_the_dashboards_have_the_panels_on_call_opens() -> None:
    panels = [p for d in dashboards().values() for p in d["panels"]]
    expressions = " ".join(t["expr"] for p in panels for t in p["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for wanted in (
        "requests / s per route",
        "errors",
        "latency p99 per route",
        "outbox backlog",
        "consumer lag",
        "dead-lettered",
    ):
        assert wanted in titles, wanted
    assert "by (method, route)" in expressions  # per route, by template


def test_every_dashboard_is_well_formed_and_reads_exposed_metrics() -> None:
    exposed = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    for name, dashboard in dashboards().items():
        assert dashboard["uid"] and dashboard["title"], name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in dashboard["panels"]:
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                named = set(re.findall(r"\b(crm_[a-z_]+)", target["expr"]))
                assert named - exposed == set(), f"{name}: {panel['title']}"
                assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_the_compose_file_runs_every_service_with_its_database_and_is_scraped() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    created = (DEPLOY / "postgres" / "init.sql").read_text()
    scraped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scraped["scrape_configs"]
    targets = set(job["static_configs"][0]["targets"])
    gateway = compose["gateway"]["environment"]
    for declared in SERVICES:
        service = compose[declared.name]
        assert service["command"] == ["serve", declared.name]
        assert service["environment"]["HTTP_PORT"] == str(declared.port)
        database = service["environment"]["DATABASE_URL"].rsplit("/", 1)[1]
        assert f"CREATE DATABASE {database};" in created, declared.name
        assert f"{declared.name}:{declared.port}" in targets
        if declared.name != "gateway":
            assert (
                gateway[f"{declared.env_prefix}_URL"] == f"http://{declared.name}:{declared.port}"
            )


def test_the_projectors_scale_on_their_backlog_and_never_beyond_the_partitions() -> None:
    """Each projector's autoscaler reads the backlog of projections that exist, through
    the adapter rule that serves the recording rule Prometheus keeps; no autoscaler asks
    for more consumers than a topic has partitions (the rest would idle)."""
    from services.alerts.notifications.handlers import WebhookDispatch
    from services.alerts.read_model.projection import ChurnFacts
    from services.analytics.read_model.projection import AnalyticsProjection
    from services.customer360.read_model.writer import Customer360Projection
    from services.loyalty.handlers.reactions import Earning

    projections = {
        p.name for p in (WebhookDispatch, ChurnFacts, AnalyticsProjection, Customer360Projection,
                         Earning)
    }
    partitions = int(of_kind("ConfigMap")["crm-config"]["data"]["KAFKA_PARTITIONS"])
    adapter = yaml.safe_load(of_kind("ConfigMap")["prometheus-adapter-crm"]["data"]["config.yaml"])
    [rule] = adapter["externalRules"]
    recorded = {
        r["record"]
        for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in group["rules"]
        if "record" in r
    }
    assert rule["seriesQuery"].split("{")[0] in recorded
    scaled: dict[str, set[str]] = {}
    for name, hpa in of_kind("HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in of_kind("Deployment")
        assert hpa["spec"]["maxReplicas"] <= partitions
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "External":
                assert metric["external"]["metric"]["name"] == rule["name"]["as"]
                selector = metric["external"]["metric"]["selector"]["matchLabels"]
                scaled.setdefault(name, set()).add(selector["projection"])
    assert set().union(*scaled.values()) == projections
    assert set(scaled) == {"customer360", "loyalty", "alerts", "analytics"}
