"""The Kubernetes backend: KEDA ScaledObjects, one per queue, with KEDA's Redis list scaler
(how the policy maps onto KEDA: docs/fleet.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from boundary.api.autoscale_policy import Policy, QueuePolicy
from boundary.api.errors import ConfigError

PASSWORD_ENV = "BOUNDARY_REDIS_PASSWORD"
"""Where KEDA reads the broker's password: an environment variable of the scaled Deployment."""


def redis_metadata(broker_url: str) -> dict[str, str]:
    """The connection half of the redis trigger's metadata, from the broker URL (never the
    password itself: KEDA reads it from PASSWORD_ENV in the Deployment's environment)."""
    parts = urlsplit(broker_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"the Kubernetes backend needs a redis:// broker URL, got '{parts.scheme}://...'")
    database = (parts.path or "/0").strip("/") or "0"
    if not database.isdigit():
        raise ConfigError(f"broker URL: '{database}' is not a Redis database index")
    meta = {"address": f"{parts.hostname}:{parts.port or 6379}", "databaseIndex": database}
    if parts.scheme == "rediss":
        meta["enableTLS"] = "true"
    if parts.password:
        meta["passwordFromEnv"] = PASSWORD_ENV
    return meta


def scaled_object(policy: Policy, queue: QueuePolicy, broker_url: str, namespace: str | None = None) -> dict[str, Any]:
    name = queue.deployment_name()
    metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {}),
                                "labels": {"app.kubernetes.io/part-of": "boundary",
                                           "boundary/queue": queue.queue.replace(".", "-")[:63]}}
    up_period = max(1, min(1800, int(policy.scale_up_cooldown_s)))
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": max(1, int(policy.interval_s)),
            "cooldownPeriod": int(policy.scale_down_cooldown_s),
            "minReplicaCount": queue.min,
            "maxReplicaCount": queue.max,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": 0,
                                    "policies": [{"type": "Pods", "value": queue.max, "periodSeconds": up_period}]},
                        "scaleDown": {"stabilizationWindowSeconds": min(3600, int(policy.scale_down_cooldown_s))},
                    }
                }
            },
            "triggers": [{
                "type": "redis",
                "metadata": {**redis_metadata(broker_url), "listName": queue.queue,
                             "listLength": str(queue.target_backlog), "activationListLength": "0"},
            }],
        },
    }


def manifests(policy: Policy, broker_url: str, namespace: str | None = None) -> str:
    """Every queue's ScaledObject, as one YAML stream."""
    objects = [scaled_object(policy, q, broker_url, namespace) for q in policy.queues]
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)
