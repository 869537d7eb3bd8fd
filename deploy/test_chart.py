#!/usr/bin/env python3
"""Checks the manifests that `helm template` renders from deploy/helm/modelbay.

Usage: test_chart.py RENDERED.yaml [--without-hpa] [--without-service-monitor]

kubernetes-validate checks that every object is well-formed for its kind; this checks that
the objects say what modelbay needs: the probes on the right paths and ports, the ports, the
hardening, the resources, the shutdown budget, where each setting comes from, and that the
Service, HorizontalPodAutoscaler, PodDisruptionBudget and ServiceMonitor point at the pods.
By default every optional object must be present; --without-hpa expects no
HorizontalPodAutoscaler (and a Deployment with replicas), --without-service-monitor no
ServiceMonitor.

Prints one summary line and exits 0, or prints every failed check and exits 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from typing import Any

import yaml

HEALTH_LIVE = "/v2/health/live"
HEALTH_READY = "/v2/health/ready"
PORTS = {"http": 8080, "grpc": 8081, "metrics": 9090}
UID = 10001
QUEUE_METRIC = "modelbay_queued_requests"

# The fields of a ServiceMonitor (monitoring.coreos.com/v1) this chart may write; kubernetes-
# validate has no schema for the CRD, so misspelt fields are caught here instead.
SERVICE_MONITOR_SPEC_FIELDS = {
    "selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels",
    "podTargetLabels", "sampleLimit", "attachMetadata",
}
SERVICE_MONITOR_ENDPOINT_FIELDS = {
    "port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
    "honorTimestamps", "relabelings", "metricRelabelings", "params", "tlsConfig",
    "authorization", "bearerTokenSecret", "followRedirects", "enableHttp2",
}


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def that(self, condition: Any, message: str) -> bool:
        if condition:
            self.passed += 1
            return True
        self.failures.append(message)
        return False


def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or default where a step is missing."""
    for step in path:
        if isinstance(obj, dict) and step in obj:
            obj = obj[step]
        elif isinstance(obj, list) and isinstance(step, int) and -len(obj) <= step < len(obj):
            obj = obj[step]
        else:
            return default
    return obj


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        docs = [doc for doc in yaml.safe_load_all(f) if doc]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise SystemExit(f"test_chart: {path}: a document is not a Kubernetes object: {doc!r:.200}")
    return docs


def one(checks: Checks, docs: list[dict], kind: str, api_version: str) -> dict | None:
    found = [d for d in docs if d["kind"] == kind]
    if not checks.that(len(found) == 1, f"expected exactly one {kind}, found {len(found)}"):
        return None
    obj = found[0]
    checks.that(obj["apiVersion"] == api_version,
                f"{kind} has apiVersion {obj['apiVersion']}, expected {api_version}")
    return obj


def selects(selector: dict | None, labels: dict | None) -> bool:
    """Whether matchLabels-style `selector` selects an object with `labels`."""
    if not selector or not labels:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def whole_number(value: Any) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"0|[1-9][0-9]*", value):
        return int(value)
    return None


def check_probe(checks: Checks, container: dict, name: str, path: str, **expected: int) -> None:
    probe = container.get(name)
    if not checks.that(isinstance(probe, dict), f"container has no {name}"):
        return
    checks.that(dig(probe, "httpGet", "path") == path,
                f"{name} path is {dig(probe, 'httpGet', 'path')!r}, expected {path!r}")
    port = dig(probe, "httpGet", "port")
    checks.that(port in ("http", PORTS["http"]),
                f"{name} port is {port!r}, expected the http port ({PORTS['http']})")
    for field, value in expected.items():
        checks.that(probe.get(field) == value,
                    f"{name}.{field} is {probe.get(field)!r}, expected {value}")


def check_deployment(checks: Checks, deployment: dict, docs: list[dict], expect_hpa: bool) -> dict:
    """Checks the Deployment; returns facts the other checks need."""
    spec = deployment.get("spec", {})
    pod = dig(spec, "template", "spec", default={})
    pod_labels = dig(spec, "template", "metadata", "labels", default={})
    facts = {"pod_labels": pod_labels, "name": dig(deployment, "metadata", "name")}

    checks.that(selects(dig(spec, "selector", "matchLabels"), pod_labels),
                "the Deployment's selector does not select its own pod template")
    if expect_hpa:
        checks.that("replicas" not in spec,
                    "with an HPA the Deployment must leave replicas unset (the HPA owns them)")
    else:
        checks.that(isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1,
                    f"Deployment replicas is {spec.get('replicas')!r}, expected a count >= 1")

    annotations = dig(spec, "template", "metadata", "annotations", default={}) or {}
    checks.that(re.fullmatch(r"[0-9a-f]{64}", str(annotations.get("checksum/config", ""))),
                "the pod template has no checksum/config annotation (config changes would not roll the pods)")

    containers = pod.get("containers") or []
    checks.that(len(containers) == 1, f"expected one container, found {len(containers)}")
    container = next((c for c in containers if c.get("name") == "modelbay"), containers[0] if containers else {})
    argv = (container.get("command") or []) + (container.get("args") or [])
    checks.that(argv[-1:] == ["serve"] and (not container.get("command") or container["command"] == ["modelbay"]),
                f"the container runs {argv!r}, expected `modelbay serve`")

    # Ports.
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    for name, number in PORTS.items():
        checks.that(ports.get(name) == number,
                    f"container port {name} is {ports.get(name)!r}, expected {number}")

    # Probes: all on key-less health paths of the http port.
    check_probe(checks, container, "startupProbe", HEALTH_LIVE, failureThreshold=60, periodSeconds=5)
    check_probe(checks, container, "livenessProbe", HEALTH_LIVE)
    check_probe(checks, container, "readinessProbe", HEALTH_READY, periodSeconds=2, failureThreshold=1)

    # Hardening.
    pod_security = pod.get("securityContext") or {}
    security = container.get("securityContext") or {}
    checks.that(pod_security.get("runAsNonRoot") is True or security.get("runAsNonRoot") is True,
                "runAsNonRoot is not true")
    checks.that(pod_security.get("runAsUser") == UID, f"pod runAsUser is {pod_security.get('runAsUser')!r}, expected {UID}")
    checks.that(pod_security.get("fsGroup") == UID, f"pod fsGroup is {pod_security.get('fsGroup')!r}, expected {UID}")
    checks.that(dig(pod_security, "seccompProfile", "type") == "RuntimeDefault",
                "pod seccompProfile is not RuntimeDefault")
    checks.that(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    checks.that(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    checks.that("ALL" in (dig(security, "capabilities", "drop") or []), "capabilities.drop does not include ALL")
    checks.that(security.get("privileged") in (None, False), "the container is privileged")
    checks.that(pod.get("automountServiceAccountToken") is False,
                "the pod mounts a service account token (automountServiceAccountToken is not false)")
    checks.that(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"),
                "the pod uses a host namespace")

    # Resources.
    resources = container.get("resources") or {}
    for section, names in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        for name in names:
            checks.that(dig(resources, section, name) not in (None, ""),
                        f"resources.{section}.{name} is not set")

    # Environment.
    env_list = container.get("env") or []
    names = [e.get("name") for e in env_list]
    duplicates = [n for n, count in Counter(names).items() if count > 1]
    checks.that(not duplicates, f"environment variables set twice: {duplicates}")
    env = {e.get("name"): e for e in env_list}

    def value(name: str) -> Any:
        return dig(env, name, "value")

    for name, port in (("MODELBAY_LISTEN", 8080), ("MODELBAY_GRPC_LISTEN", 8081), ("MODELBAY_METRICS_LISTEN", 9090)):
        checks.that(value(name) == f"0.0.0.0:{port}", f"{name} is {value(name)!r}, expected 0.0.0.0:{port}")

    secret_refs = {}
    for name, key in (("MODELBAY_REGISTRY", "database-url"),
                      ("AWS_ACCESS_KEY_ID", "aws-access-key-id"),
                      ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key")):
        ref = dig(env, name, "valueFrom", "secretKeyRef")
        if checks.that(isinstance(ref, dict) and ref.get("key") == key and ref.get("name"),
                       f"{name} does not come from a secretKeyRef with key {key}"):
            secret_refs[name] = ref["name"]
    checks.that("value" not in env.get("MODELBAY_REGISTRY", {}),
                "MODELBAY_REGISTRY has a literal value (the database URL belongs in the Secret)")

    checks.that(dig(env, "MODELBAY_REPLICA_ID", "valueFrom", "fieldRef", "fieldPath") == "metadata.name",
                "MODELBAY_REPLICA_ID does not come from fieldRef metadata.name")
    checks.that(dig(env, "POD_IP", "valueFrom", "fieldRef", "fieldPath") == "status.podIP",
                "POD_IP does not come from fieldRef status.podIP")
    advertise = value("MODELBAY_ADVERTISE_ADDRESS")
    checks.that(advertise == "http://$(POD_IP):8080",
                f"MODELBAY_ADVERTISE_ADDRESS is {advertise!r}, expected http://$(POD_IP):8080")
    if "POD_IP" in names and "MODELBAY_ADVERTISE_ADDRESS" in names:
        checks.that(names.index("POD_IP") < names.index("MODELBAY_ADVERTISE_ADDRESS"),
                    "POD_IP must come before MODELBAY_ADVERTISE_ADDRESS, or $(POD_IP) is not expanded")

    grace = whole_number(value("MODELBAY_SHUTDOWN_GRACE"))
    drain = whole_number(value("MODELBAY_DRAIN_TIMEOUT"))
    checks.that(grace is not None, f"MODELBAY_SHUTDOWN_GRACE is {value('MODELBAY_SHUTDOWN_GRACE')!r}, expected whole seconds")
    checks.that(drain is not None, f"MODELBAY_DRAIN_TIMEOUT is {value('MODELBAY_DRAIN_TIMEOUT')!r}, expected whole seconds")
    checks.that(whole_number(value("MODELBAY_CACHE_MAX_BYTES")) not in (None, 0),
                f"MODELBAY_CACHE_MAX_BYTES is {value('MODELBAY_CACHE_MAX_BYTES')!r}, expected a byte count")
    artifacts = value("MODELBAY_ARTIFACTS")
    checks.that(isinstance(artifacts, str) and re.match(r"(s3|file)://", artifacts),
                f"MODELBAY_ARTIFACTS is {artifacts!r}, expected s3://... or file://...")
    checks.that(value("AWS_ALLOW_HTTP") in ("true", "false"),
                f"AWS_ALLOW_HTTP is {value('AWS_ALLOW_HTTP')!r}, expected \"true\" or \"false\"")

    # Shutdown budget: preStop sleep, then the server's grace and drain, before SIGKILL.
    sleep = dig(container, "lifecycle", "preStop", "sleep", "seconds", default=0)
    checks.that(isinstance(sleep, int) and sleep >= 0, f"preStop sleep seconds is {sleep!r}")
    period = pod.get("terminationGracePeriodSeconds")
    if grace is not None and drain is not None and isinstance(sleep, int):
        checks.that(isinstance(period, int) and period > sleep + grace + drain,
                    f"terminationGracePeriodSeconds is {period!r}, expected more than preStop sleep {sleep} + "
                    f"shutdown grace {grace} + drain timeout {drain}")

    # The ConfigMap of extra settings.
    config_name = next((dig(e, "configMapRef", "name") for e in container.get("envFrom") or []
                        if dig(e, "configMapRef", "name")), None)
    config_maps = {dig(d, "metadata", "name"): d for d in docs if d["kind"] == "ConfigMap"}
    if checks.that(config_name in config_maps, f"envFrom names ConfigMap {config_name!r}, which is not rendered"):
        data = config_maps[config_name].get("data") or {}
        checks.that(all(isinstance(v, str) for v in data.values()), "ConfigMap data values must all be strings")
        overlap = sorted(set(data) & set(names))
        checks.that(not overlap, f"ConfigMap keys also set by env (env wins silently): {overlap}")

    # Volumes and mounts.
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in container.get("volumeMounts") or []}
    for mount in mounts.values():
        checks.that(mount.get("name") in volumes, f"volumeMount {mount.get('name')!r} has no volume")

    def volume_at(path: str) -> dict:
        return volumes.get(dig(mounts, path, "name"), {})

    for variable, path in (("MODELBAY_DATA_DIR", "/var/lib/modelbay"), ("MODELBAY_CACHE_DIR", "/var/cache/modelbay")):
        checks.that(value(variable) == path, f"{variable} is {value(variable)!r}, expected {path}")
        checks.that("emptyDir" in volume_at(path), f"{path} is not an emptyDir volume")
    checks.that("emptyDir" in volume_at("/tmp"), "/tmp is not an emptyDir (the root filesystem is read-only)")
    checks.that(dig(volume_at("/var/cache/modelbay"), "emptyDir", "sizeLimit"),
                "the cache emptyDir has no sizeLimit")

    key_file = value("MODELBAY_ADMIN_KEY_FILE") or ""
    key_dir, _, key_name = key_file.rpartition("/")
    key_mount = mounts.get(key_dir, {})
    key_volume = volumes.get(key_mount.get("name"), {})
    checks.that(key_mount.get("readOnly") is True, f"the admin key mount {key_dir!r} is not readOnly")
    secret_volume = key_volume.get("secret") or {}
    items = {i.get("path"): i.get("key") for i in secret_volume.get("items") or []}
    checks.that(items.get(key_name) == "admin-key",
                f"MODELBAY_ADMIN_KEY_FILE {key_file!r} is not the admin-key item of a Secret volume")
    checks.that(secret_volume.get("defaultMode") == 0o400,
                f"the admin key volume's defaultMode is {secret_volume.get('defaultMode')!r}, expected 0400")
    if secret_volume.get("secretName"):
        secret_refs["admin key volume"] = secret_volume["secretName"]

    # Every credential from one Secret; the chart's own, when it renders one.
    secret_names = set(secret_refs.values())
    checks.that(len(secret_names) == 1, f"credentials come from several Secrets: {secret_refs}")
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if secrets:
        secret = secrets[0]
        checks.that(dig(secret, "metadata", "name") in secret_names,
                    f"the rendered Secret {dig(secret, 'metadata', 'name')!r} is not the one the pods read ({sorted(secret_names)})")
        data = {**(secret.get("stringData") or {}), **(secret.get("data") or {})}
        for key in ("database-url", "admin-key"):
            checks.that(data.get(key), f"the rendered Secret has no {key}")

    # Service account.
    accounts = {dig(d, "metadata", "name"): d for d in docs if d["kind"] == "ServiceAccount"}
    account = accounts.get(pod.get("serviceAccountName"))
    if checks.that(account is not None, f"serviceAccountName {pod.get('serviceAccountName')!r} is not rendered"):
        checks.that(account.get("automountServiceAccountToken") is False,
                    "the ServiceAccount does not set automountServiceAccountToken: false")

    # Spread over nodes.
    spread = [c for c in pod.get("topologySpreadConstraints") or []
              if c.get("topologyKey") == "kubernetes.io/hostname"
              and selects(dig(c, "labelSelector", "matchLabels"), pod_labels)]
    anti = [t for t in dig(pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", default=[]) or []
            if dig(t, "podAffinityTerm", "topologyKey") == "kubernetes.io/hostname"]
    checks.that(spread or anti, "the pods are not spread across nodes (topologySpreadConstraints or podAntiAffinity)")
    return facts


def check_service(checks: Checks, service: dict, pod_labels: dict) -> None:
    spec = service.get("spec", {})
    checks.that(spec.get("type", "ClusterIP") == "ClusterIP", f"Service type is {spec.get('type')!r}, expected ClusterIP")
    checks.that(selects(spec.get("selector"), pod_labels), "the Service's selector does not select the pods")
    ports = {p.get("name"): p for p in spec.get("ports") or []}
    for name, number in PORTS.items():
        port = ports.get(name, {})
        checks.that(port.get("port") == number, f"Service port {name} is {port.get('port')!r}, expected {number}")
        checks.that(port.get("targetPort") in (name, number),
                    f"Service port {name} targets {port.get('targetPort')!r}, expected {name}")
    checks.that(dig(ports, "grpc", "appProtocol") == "kubernetes.io/h2c",
                "Service port grpc does not have appProtocol kubernetes.io/h2c")


def check_hpa(checks: Checks, hpa: dict, deployment_name: str) -> None:
    spec = hpa.get("spec", {})
    target = spec.get("scaleTargetRef", {})
    checks.that(target.get("kind") == "Deployment" and target.get("name") == deployment_name,
                f"the HPA scales {target}, not Deployment {deployment_name}")
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    checks.that(isinstance(low, int) and isinstance(high, int) and 1 <= low <= high,
                f"HPA minReplicas {low!r} / maxReplicas {high!r}")
    metrics = spec.get("metrics") or []
    cpu = [m for m in metrics if m.get("type") == "Resource" and dig(m, "resource", "name") == "cpu"]
    checks.that(cpu and dig(cpu[0], "resource", "target", "type") == "Utilization"
                and isinstance(dig(cpu[0], "resource", "target", "averageUtilization"), int),
                "the HPA has no cpu Resource metric with a Utilization target")
    queued = [m for m in metrics if m.get("type") == "Pods" and dig(m, "pods", "metric", "name") == QUEUE_METRIC]
    checks.that(queued and dig(queued[0], "pods", "target", "type") == "AverageValue"
                and dig(queued[0], "pods", "target", "averageValue") not in (None, ""),
                f"the HPA has no Pods metric {QUEUE_METRIC} with an AverageValue target")


def check_pdb(checks: Checks, pdb: dict, pod_labels: dict) -> None:
    spec = pdb.get("spec", {})
    checks.that(selects(dig(spec, "selector", "matchLabels"), pod_labels), "the PDB's selector does not select the pods")
    checks.that(spec.get("maxUnavailable") == 1, f"PDB maxUnavailable is {spec.get('maxUnavailable')!r}, expected 1")


def check_service_monitor(checks: Checks, monitor: dict, service: dict | None) -> None:
    spec = monitor.get("spec", {})
    unknown = sorted(set(spec) - SERVICE_MONITOR_SPEC_FIELDS)
    checks.that(not unknown, f"ServiceMonitor spec has unknown fields {unknown}")
    if service is not None:
        checks.that(selects(dig(spec, "selector", "matchLabels"), dig(service, "metadata", "labels")),
                    "the ServiceMonitor's selector does not select the Service")
        namespaces = dig(spec, "namespaceSelector", "matchNames")
        checks.that(namespaces is None or isinstance(namespaces, list), "namespaceSelector.matchNames is not a list")
    endpoints = spec.get("endpoints") or []
    checks.that(len(endpoints) == 1, f"expected one ServiceMonitor endpoint, found {len(endpoints)}")
    for endpoint in endpoints:
        unknown = sorted(set(endpoint) - SERVICE_MONITOR_ENDPOINT_FIELDS)
        checks.that(not unknown, f"ServiceMonitor endpoint has unknown fields {unknown}")
    endpoint = endpoints[0] if endpoints else {}
    checks.that(endpoint.get("port") == "metrics", f"the ServiceMonitor scrapes port {endpoint.get('port')!r}, expected metrics")
    checks.that(endpoint.get("path") == "/metrics", f"the ServiceMonitor scrapes path {endpoint.get('path')!r}, expected /metrics")
    checks.that(re.fullmatch(r"[0-9]+(ms|s|m|h)", str(endpoint.get("interval", ""))),
                f"the ServiceMonitor interval is {endpoint.get('interval')!r}, expected a duration like 15s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rendered", help="output of helm template")
    parser.add_argument("--without-hpa", action="store_true", help="expect no HorizontalPodAutoscaler")
    parser.add_argument("--without-service-monitor", action="store_true", help="expect no ServiceMonitor")
    args = parser.parse_args()

    docs = load(args.rendered)
    checks = Checks()
    names = Counter((d["kind"], dig(d, "metadata", "name")) for d in docs)
    checks.that(all(count == 1 for count in names.values()),
                f"objects rendered twice: {[k for k, c in names.items() if c > 1]}")

    deployment = one(checks, docs, "Deployment", "apps/v1")
    service = one(checks, docs, "Service", "v1")
    pod_labels: dict = {}
    deployment_name = None
    if deployment is not None:
        facts = check_deployment(checks, deployment, docs, expect_hpa=not args.without_hpa)
        pod_labels, deployment_name = facts["pod_labels"], facts["name"]
    if service is not None:
        check_service(checks, service, pod_labels)

    if args.without_hpa:
        checks.that(not any(d["kind"] == "HorizontalPodAutoscaler" for d in docs),
                    "a HorizontalPodAutoscaler is rendered, but --without-hpa expects none")
    else:
        hpa = one(checks, docs, "HorizontalPodAutoscaler", "autoscaling/v2")
        if hpa is not None:
            check_hpa(checks, hpa, deployment_name)

    pdb = one(checks, docs, "PodDisruptionBudget", "policy/v1")
    if pdb is not None:
        check_pdb(checks, pdb, pod_labels)

    if args.without_service_monitor:
        checks.that(not any(d["kind"] == "ServiceMonitor" for d in docs),
                    "a ServiceMonitor is rendered, but --without-service-monitor expects none")
    else:
        monitor = one(checks, docs, "ServiceMonitor", "monitoring.coreos.com/v1")
        if monitor is not None:
            check_service_monitor(checks, monitor, service)

    kinds = ", ".join(f"{kind}" for kind in sorted({d["kind"] for d in docs}))
    if checks.failures:
        print(f"test_chart: FAILED {len(checks.failures)} of {len(checks.failures) + checks.passed} checks "
              f"in {args.rendered}:", file=sys.stderr)
        for failure in checks.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"test_chart: OK, {checks.passed} checks passed on {len(docs)} objects in {args.rendered} ({kinds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
