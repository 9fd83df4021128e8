"""The Serve config files under deploy/ray/ are valid and build the csmstream application."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray.serve")

import yaml  # noqa: E402 - Ray brings PyYAML
from ray.serve.schema import ServeDeploySchema  # noqa: E402

from csmstream.scale import autoscale, router  # noqa: E402
from csmstream.scale.deployment import ReplicaPlan, build_app, deployment_options  # noqa: E402

CONFIGS = sorted((Path(__file__).parents[2] / "deploy" / "ray").glob("serve_config*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_file_is_valid_and_builds(path, monkeypatch):
    config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    (app,) = config.applications
    assert app.import_path == "csmstream.scale.deployment:build_app"
    for name, value in app.runtime_env["env_vars"].items():
        monkeypatch.setenv(name, value)  # as Ray hands them to the builder
    built = build_app(app.args)
    deployment = built._bound_deployment
    assert deployment.num_replicas == app.args["replicas"]
    assert deployment.ray_actor_options["num_gpus"] == app.args.get("replica_gpus", 0)


def test_unknown_args_are_refused():
    from csmstream.errors import CsmstreamError

    with pytest.raises(CsmstreamError, match="unknown csmstream application args: replica"):
        build_app({"replica": 2})


def test_one_gpu_per_replica_router_and_autoscaling():
    fixed = deployment_options(ReplicaPlan(replicas=3, replica_gpus=1, max_slots=8))
    assert fixed["num_replicas"] == 3 and fixed["ray_actor_options"]["num_gpus"] == 1
    assert fixed["request_router_config"].request_router_class == router.IMPORT_PATH
    assert "autoscaling_config" not in fixed
    scaled = deployment_options(ReplicaPlan(replicas=2, max_replicas=6, max_slots=8))
    auto = scaled["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"], auto["target_ongoing_requests"]) == (2, 6, 8)
    assert auto["policy"]["policy_function"] == autoscale.IMPORT_PATH
    assert "num_replicas" not in scaled
