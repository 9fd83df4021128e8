"""Server-sent events, as OpenAI-compatible servers stream them: `data:` lines, a blank line ends an event."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield the `data` payload of each event (several `data:` lines of one event joined by newlines).

    Comments (`:` lines), `event:`, `id:` and `retry:` fields are ignored: chat completions only use `data`.
    """
    data_lines: list[str] = []
    async for raw_line in lines:
        line = raw_line.rstrip("\r\n")
        if not line:
            if data_lines:
                yield "\n".join(data_lines)
                data_lines = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field != "data":
            continue
        data_lines.append(value[1:] if value.startswith(" ") else value)
    if data_lines:  # a server that closes without the final blank line
        yield "\n".join(data_lines)
