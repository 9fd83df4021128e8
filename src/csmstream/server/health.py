"""`GET /health`: is the server up, which engine and model, how loaded."""

from __future__ import annotations

from fastapi import APIRouter, Request

from csmstream.server.context import server_context

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict:
    ctx = server_context(request)
    stats = ctx.engine.stats()
    return {
        "status": "ok",
        "engine": ctx.engine.name,
        "model": ctx.engine.model_name,
        "sample_rate": ctx.engine.sample_rate,
        "active_sessions": stats.active_sessions,
        "queued": stats.queued,
        "max_slots": stats.max_slots,
        "max_queue": stats.max_queue,
        "step_ms_avg": stats.step_ms_avg,
    }
