"""Helpers of the engine tests: run a coroutine against a started engine."""

from __future__ import annotations

import asyncio


def run_with_engine(engine, body):
    """Start `engine`, await `body(engine)`, stop the engine whatever happens; returns what `body` returned."""

    async def main():
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.stop()

    return asyncio.run(main())
