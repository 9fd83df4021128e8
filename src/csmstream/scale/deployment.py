"""The Ray Serve application: `SpeechReplica` with its resources, router, autoscaling and environment.

Two ways in, one result: `build_application(ReplicaPlan)` from `csmstream serve --ray` (`ray_serve.py`), and
`build_app(args)`, the application builder that a Serve config file names
(`import_path: csmstream.scale.deployment:build_app`, see deploy/ray/serve_config.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csmstream.errors import CsmstreamError

DEPLOYMENT_NAME = "csmstream"
APP_NAME = "csmstream"
# Ray Serve counts an open WebSocket as one ongoing request for as long as it is open, speaking or not, so
# the per-replica bound is far above the engine's slots: the engine itself queues and says `busy`.
DEFAULT_MAX_ONGOING_REQUESTS = 1024
# How often replicas report their headroom to the routers (through the Serve controller).
ROUTING_STATS_PERIOD_S = 1.0
ROUTING_STATS_TIMEOUT_S = 5.0
# Autoscaling: react to a backlog within seconds, give replicas back slowly (a CSM replica loads for minutes).
UPSCALE_DELAY_S = 10.0
DOWNSCALE_DELAY_S = 300.0


@dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas, what each one holds, and what each one is told."""

    replicas: int = 1
    max_replicas: int | None = None  # above `replicas`: autoscale between the two
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0  # 1 for a CSM replica on a GPU: one engine per GPU
    max_slots: int = 8  # the engine's slots: autoscaling's target of ongoing requests per replica
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    drain_timeout_s: float = 30.0  # a stopping replica lets its streams finish this long
    server_options: dict[str, Any] = field(default_factory=dict)  # ServerOptions overrides
    log_level: str = "info"
    env_vars: dict[str, str] = field(default_factory=dict)  # CSMSTREAM_* for every replica

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise CsmstreamError("--replicas must be at least 1")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise CsmstreamError("--max-replicas must be at least --replicas")
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            raise CsmstreamError("--replica-cpus and --replica-gpus must be zero or more")

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.replicas


def deployment_options(plan: ReplicaPlan) -> dict[str, Any]:
    """The keyword arguments of `serve.deployment` for this plan."""
    from ray.serve.config import RequestRouterConfig

    from csmstream.scale import autoscale, router

    actor_options: dict[str, Any] = {"num_cpus": plan.replica_cpus, "num_gpus": plan.replica_gpus}
    if plan.env_vars:
        actor_options["runtime_env"] = {"env_vars": dict(plan.env_vars)}
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": actor_options,
        "max_ongoing_requests": plan.max_ongoing_requests,
        "graceful_shutdown_timeout_s": max(plan.drain_timeout_s, 1.0),
        "request_router_config": RequestRouterConfig(
            request_router_class=router.IMPORT_PATH,
            request_routing_stats_period_s=ROUTING_STATS_PERIOD_S,
            request_routing_stats_timeout_s=ROUTING_STATS_TIMEOUT_S,
        ),
    }
    if plan.autoscaling:
        options["autoscaling_config"] = {
            "min_replicas": plan.replicas,
            "initial_replicas": plan.replicas,
            "max_replicas": plan.max_replicas,
            "target_ongoing_requests": plan.max_slots,
            "upscale_delay_s": UPSCALE_DELAY_S,
            "downscale_delay_s": DOWNSCALE_DELAY_S,
            "policy": {"policy_function": autoscale.IMPORT_PATH},
        }
    else:
        options["num_replicas"] = plan.replicas
    return options


def build_application(plan: ReplicaPlan):
    """The Serve application (`Deployment.bind()`), ready for `serve.run`."""
    from ray import serve

    from csmstream.scale.replica import SpeechReplica

    deployment = serve.deployment(SpeechReplica, **deployment_options(plan))
    return deployment.bind(server_options=dict(plan.server_options), log_level=plan.log_level)


def build_app(args: dict[str, Any]):
    """The application builder for Serve config files. `args` (all optional): `replicas`, `max_replicas`,
    `replica_cpus`, `replica_gpus`, `max_ongoing_requests`, `drain_timeout_s`, `log_level`, and the server
    options `ws_send_buffer_bytes`, `max_upload_bytes`, `max_body_bytes`. Engine settings are `CSMSTREAM_*`
    variables in the application's `runtime_env`, which reach every replica (and this builder)."""
    from csmstream.config import Settings

    known = {"replicas", "max_replicas", "replica_cpus", "replica_gpus", "max_ongoing_requests"}
    known |= {"drain_timeout_s", "log_level"}
    server_keys = {"ws_send_buffer_bytes", "max_upload_bytes", "max_body_bytes"}
    unknown = set(args) - known - server_keys
    if unknown:
        raise CsmstreamError(f"unknown csmstream application args: {', '.join(sorted(unknown))}")
    plan = ReplicaPlan(
        **{k: v for k, v in args.items() if k in known},
        max_slots=Settings().max_slots,
        server_options={k: v for k, v in args.items() if k in server_keys},
    )
    return build_application(plan)
