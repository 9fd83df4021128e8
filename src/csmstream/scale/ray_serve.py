"""`csmstream serve --ray`: the same server as N replicas behind Ray Serve's HTTP proxy.

Connects to a Ray cluster (`--ray-address` or `RAY_ADDRESS`), or starts a Ray instance on this machine for the
lifetime of the command; deploys the application of `deployment.py` with every serve flag turned into the
`CSMSTREAM_*` variable it stands for, so that each replica builds the same `Settings`; prints
`csmstream: listening on URL` once every replica is ready; on SIGTERM or Ctrl-C deletes the application
(Ray Serve lets open streams finish for the drain timeout) and stops a Ray instance it started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from csmstream.errors import CsmstreamError
from csmstream.scale.deployment import APP_NAME, ReplicaPlan, build_application

log = logging.getLogger(__name__)

# Variables besides CSMSTREAM_* that a replica needs as the single server would have them (the model's hub
# access and cache, thread counts). Ray starts replicas from the raylet's environment, not the caller's.
PASSED_THROUGH = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")


def env_value(value: Any) -> str:
    """A setting as pydantic-settings reads it back from the environment."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Path):
        return str(value.expanduser())
    return str(value)


def replica_env(flags: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's CSMSTREAM_* variables (and `PASSED_THROUGH`), overridden by the flags given."""
    environ = dict(os.environ) if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith("CSMSTREAM_") or k in PASSED_THROUGH}
    for name, value in flags.items():
        if value is not None:
            env[f"CSMSTREAM_{name.upper()}"] = env_value(value)
    return env


def default_replica_gpus(settings, cluster_gpus: float) -> float:
    """One GPU per replica where a replica runs CSM on a GPU; none for piper, `--device cpu`, or a cluster
    without GPUs (`--engine auto` then runs piper in each replica)."""
    if settings.engine == "piper" or settings.device == "cpu":
        return 0.0
    return 1.0 if cluster_gpus >= 1 else 0.0


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run(args, settings, server_options: dict[str, Any], flags: dict[str, Any]) -> int:
    import ray
    from ray import serve

    address = getattr(args, "ray_address", None) or os.environ.get("RAY_ADDRESS") or "local"
    started_here = address == "local"
    init = {"address": address, "logging_level": logging.WARNING}
    if started_here:
        init["include_dashboard"] = False  # `ray start --head` for a cluster with a dashboard
    ray.init(**init)
    try:
        cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
        gpus = (
            args.replica_gpus
            if args.replica_gpus is not None
            else default_replica_gpus(settings, cluster_gpus)
        )
        if gpus == 0 and settings.engine != "piper" and settings.device != "cpu":
            log.warning("no GPU in the Ray cluster: replicas run on CPUs (piper, unless --engine csm)")
        plan = ReplicaPlan(
            replicas=args.replicas,
            max_replicas=args.max_replicas,
            replica_cpus=args.replica_cpus,
            replica_gpus=gpus,
            max_slots=settings.max_slots,
            drain_timeout_s=args.drain_timeout if args.drain_timeout is not None else 30.0,
            server_options=server_options,
            log_level=args.log_level,
            env_vars=replica_env(flags),
        )
        port = settings.port or _free_port(settings.host)
        serve.start(http_options={"host": settings.host, "port": port})
        # --log-level also sets Ray Serve's logs of the replicas (their access log is at INFO)
        logging_config = {"log_level": args.log_level.upper()}
        serve.run(build_application(plan), name=APP_NAME, route_prefix="/", logging_config=logging_config)
        host = settings.host
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        scaling = (
            f"{plan.replicas}-{plan.max_replicas} replicas"
            if plan.autoscaling
            else f"{plan.replicas} replicas"
        )
        print(f"csmstream: listening on {url} (ray serve, {scaling})", flush=True)
        _wait_for_stop()
        print("csmstream: stopping: open streams may finish for the drain timeout", flush=True)
        serve.delete(APP_NAME)
        if started_here:
            serve.shutdown()
    except CsmstreamError:
        raise
    except Exception as exc:  # Ray's own errors: one clear line rather than a trace through Ray
        raise CsmstreamError(f"ray serve failed: {exc} (a replica's own error is in the log above)") from exc
    finally:
        ray.shutdown()
    return 0


def _wait_for_stop() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
