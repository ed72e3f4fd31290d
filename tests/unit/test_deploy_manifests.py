"""Kubernetes manifests under deploy/ validate offline against the Kubernetes API schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.gateway.config import GatewayConfig

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SUITE = ("gateway", "ingest", "memory", "policy", "inference")
VERSION = "1.31.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _resources() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.rglob("*.yaml")) if p.name != "kustomization.yaml" for d in _docs(p)]


def test_every_manifest_is_a_valid_kubernetes_object() -> None:
    resources = _resources()
    assert len(resources) >= 20
    for path, doc in resources:
        if path.parent.name == "gpu":  # strategic-merge patch: a partial object by design
            continue
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_strict_validation_rejects_unknown_fields() -> None:
    _, deployment = next((p, d) for p, d in _resources() if d["kind"] == "Deployment")
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_kustomizations_reference_existing_files() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        paths = list(spec.get("resources", [])) + [p["path"] for p in spec.get("patches", [])]
        assert paths
        for rel in paths:
            assert (kustomization.parent / rel).exists(), f"{kustomization}: {rel} is missing"


def test_each_service_scales_on_its_own_and_inference_runs_on_gpus() -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for path, doc in _resources():
        if path.parent.name == "base":
            by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for name in SUITE:
        deployment = by_kind["Deployment"][name]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["readinessProbe"]["grpc"]["port"] == container["ports"][0]["containerPort"]
        assert by_kind["Service"][name]["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
        assert by_kind["HorizontalPodAutoscaler"][name]["spec"]["scaleTargetRef"]["name"] == name
    inference = by_kind["Deployment"]["inference"]["spec"]["template"]["spec"]
    assert inference["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert by_kind["HorizontalPodAutoscaler"]["inference"]["spec"]["metrics"][0]["type"] == "Pods"
    assert by_kind["Service"]["inference-headless"]["spec"]["clusterIP"] == "None"


def test_gateway_routes_inference_by_creator_over_every_ready_replica() -> None:
    base = {(d["kind"], d["metadata"]["name"]): d for p, d in _resources() if p.parent.name == "base"}
    inference = base[("Deployment", "inference")]
    headless = base[("Service", "inference-headless")]["spec"]
    assert headless["clusterIP"] == "None" and not headless["publishNotReadyAddresses"]
    assert headless["selector"] == inference["spec"]["selector"]["matchLabels"]
    port = inference["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert headless["ports"][0]["port"] == port

    container = base[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # The same variables the gateway reads: a bad value would stop it at start.
    cfg = GatewayConfig.from_env(env)
    assert cfg.inference_dns == f"inference-headless:{port}"
    assert cfg.inference_dns_refresh_seconds > 0
    # Only the gateway routes by creator; ingest and policy embed through the balanced Service.
    for name in ("ingest", "policy", "memory", "inference"):
        spec = base[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        assert all(e["name"] != "AVATAR_INFERENCE_DNS" for e in spec.get("env", []))
