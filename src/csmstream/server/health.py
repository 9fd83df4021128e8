"""`GET /health`: is the server up, which engine and model, how loaded; and the two probes of supervisors
and load balancers, `GET /health/ready` and `GET /health/live`.

`status` is the engine's: `starting` (loading, compiling, measuring), `ok`, `draining`, `unhealthy`. Anything
but `ok` answers 503, so a load balancer or supervisor can act on the status code alone.

- `/health/ready` (readiness: send traffic here?): 200 `{"ready": true}` only while the engine is `ok`, which
  also means the server is not draining (a SIGTERM turns the engine `draining`, server/drain.py); otherwise
  503 `{"ready": false, "status": ..., "reason": ...}`.
- `/health/live` (liveness: restart this process?): 200 whenever the process answers HTTP at all, also while
  it warms up or drains. An `unhealthy` engine is live too: `csmstream serve` exits by itself (status 3)
  soon after, and the supervisor restarts it then; killing it earlier would cut the errors on their way out.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from csmstream.server.context import server_context

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    ctx = server_context(request)
    stats = ctx.engine.stats()
    status = ctx.engine.status
    body = {
        "status": status,
        "engine": ctx.engine.name,
        "model": ctx.engine.model_name,
        "sample_rate": ctx.engine.sample_rate,
        "active_sessions": stats.active_sessions,
        "queued": stats.queued,
        "max_slots": stats.max_slots,
        "max_queue": stats.max_queue,
        "step_ms_avg": stats.step_ms_avg,
        # real-time capacity from the measured step cost (null where nothing is measured)
        "capacity_streams": stats.capacity_streams,
        "streams_behind": stats.streams_behind,
        "predicted_step_ms": stats.predicted_step_ms,
        "step_fixed_ms": stats.step_fixed_ms,
        "step_per_stream_ms": stats.step_per_stream_ms,
        "side_work_ms_avg": stats.side_work_ms_avg,
        "compile": stats.compile,
        "adapters": stats.adapters,  # fine-tuned voices: bank capacity, loaded, in use (CSM only)
        # the conversation (/v1/realtime): whether an LLM will answer, so a page can say so before anyone speaks
        "llm": _llm(request, ctx.settings),
    }
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


# Why a server is not ready, by engine status: the text of a 503 from /health/ready.
NOT_READY_REASONS = {
    "starting": "the engine is loading the model or warming up (building and timing its step shapes)",
    "draining": "the server is draining: it is shutting down and admits no new requests",
    "unhealthy": "the engine failed (device errors) and the server is about to exit for a restart",
}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    status = server_context(request).engine.status
    if status == "ok":
        return JSONResponse({"ready": True, "status": status})
    reason = NOT_READY_REASONS.get(status, f"the engine's status is {status}")
    return JSONResponse({"ready": False, "status": status, "reason": reason}, status_code=503)


@router.get("/health/live")
async def live(request: Request) -> JSONResponse:
    return JSONResponse({"live": True, "status": server_context(request).engine.status})


def _llm(request: Request, settings) -> dict:
    from csmstream.pipeline.llm.default_model import describe_llm

    llm = describe_llm(settings)
    services = getattr(request.app.state, "realtime", None)  # set up by the first conversation
    problem = getattr(services, "llm_problem", None) if getattr(services, "_ready", False) else None
    if llm["configured"] and problem:  # configured, but it failed to load (e.g. llama-cpp-python missing)
        llm = {**llm, "configured": False, "problem": problem}
    return llm
