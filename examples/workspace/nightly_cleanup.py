"""A scheduled workflow: runs as the system scheduler in GLOBAL scope."""

import asyncio
import logging

from bifrost import ExecutionContext, workflow


@workflow(
    name="nightly_cleanup",
    description="Purge stale temp files every night",
    category="Maintenance",
    schedule="0 3 * * *",
    timeout_seconds=900,
)
async def nightly_cleanup(context: ExecutionContext):
    logging.info(f"Cleanup started by {context.executed_by} (global={context.is_global_scope})")
    await asyncio.sleep(0.01)
    return {"removed": 0, "scope": context.scope}
