"""deploy/ wires traces as it wires metrics (decision 0103): every service sends them to
a trace backend that the deployment names, and Grafana reads that backend beside
Prometheus, with each latency exemplar leading to its trace."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import yaml

from services.bootstrap import SERVICES
from tests.test_deploy_manifests import DEPLOY, of_kind


def compose_services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    return found


def sources_by_type(datasources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {source["type"]: source for source in datasources}


def test_every_compose_service_sends_its_traces_to_the_trace_backend_grafana_reads() -> None:
    compose = compose_services()
    endpoints = {
        compose[s.name]["environment"].get("OTEL_EXPORTER_OTLP_ENDPOINT") for s in SERVICES
    }
    (endpoint,) = endpoints
    assert endpoint is not None and urlparse(endpoint).port == 4318  # OTLP over HTTP
    backend = urlparse(endpoint).hostname
    assert backend in compose

    provisioned = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    sources = sources_by_type(yaml.safe_load(provisioned.read_text())["datasources"])
    assert urlparse(sources["jaeger"]["url"]).hostname == backend
    (destination,) = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": sources["jaeger"]["uid"]}
    assert "--enable-feature=exemplar-storage" in compose["prometheus"]["command"]


def test_the_kubernetes_pods_send_a_ratio_of_their_traces_to_a_service_of_the_namespace() -> None:
    config = of_kind("ConfigMap")["crm-config"]["data"]
    host = urlparse(config["OTEL_EXPORTER_OTLP_ENDPOINT"]).hostname
    assert host is not None
    name, namespace = host.split(".")[:2]
    assert namespace == "crm" and name in of_kind("Service")
    assert 0.0 < float(config["OTEL_TRACES_SAMPLER_ARG"]) <= 1.0

    shipped = of_kind("ConfigMap")["grafana-datasources-crm"]
    assert shipped["metadata"]["labels"]["grafana_datasource"] == "1"
    (text,) = shipped["data"].values()
    sources = sources_by_type(yaml.safe_load(text)["datasources"])
    (destination,) = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["datasourceUid"] == sources["jaeger"]["uid"]
