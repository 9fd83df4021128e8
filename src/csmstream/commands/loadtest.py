"""`csmstream loadtest URL`: simulated listeners against a running deployment; prints what they heard.

    csmstream loadtest URL --users N --ramp SECONDS [--duration S] [--voice V] [--api-key K]
                       [--cancel-fraction 0.1] [--disconnect-fraction 0.05] [--jitter-ms 200] [--seed S]
                       [--json]

Users arrive over the ramp and speak to `/v1/tts/stream` until the duration is over (the workload is in
`csmstream.clients.loadtest.workload`). Exit status: 0 when the load was held (the verdict), 3 when it ran
but was not held, 1 when it could not run (no server at URL, a refused API key, an unknown voice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

EXIT_NOT_HELD = 3
DEFAULT_DURATION_S = 60.0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "loadtest",
        help="simulated listeners against a csmstream deployment: TTFA, underruns, errors, a verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", help="the deployment, e.g. http://127.0.0.1:8000")
    p.add_argument("--users", type=int, required=True, help="simulated users at once, after the ramp")
    p.add_argument("--ramp", type=float, required=True, help="seconds over which the users arrive")
    p.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        help=f"seconds from the start during which streams start (default {DEFAULT_DURATION_S:g})",
    )
    p.add_argument("--voice", default=None, help="voice id (default: the server's)")
    p.add_argument("--api-key", default=None, help="the server's API key (default: $CSMSTREAM_API_KEY)")
    p.add_argument(
        "--cancel-fraction", type=float, default=0.1, help="streams cancelled mid-stream (default 0.1)"
    )
    p.add_argument(
        "--disconnect-fraction",
        type=float,
        default=0.05,
        help="streams whose listener hangs up mid-stream (default 0.05)",
    )
    p.add_argument(
        "--jitter-ms", type=float, default=200.0, help="audio buffered before playback starts (default 200)"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds arrivals, texts and fates (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from csmstream.clients.loadtest.preflight import preflight
    from csmstream.clients.loadtest.report import build_report, format_text
    from csmstream.clients.loadtest.runner import LoadRun, print_progress
    from csmstream.clients.loadtest.workload import Workload
    from csmstream.clients.server_url import normalize_server_url, resolve_api_key

    url = normalize_server_url(args.url)
    api_key = resolve_api_key(args.api_key, os.environ)
    workload = Workload(
        users=args.users,
        ramp_s=args.ramp,
        duration_s=args.duration,
        voice_id=args.voice,
        cancel_fraction=args.cancel_fraction,
        disconnect_fraction=args.disconnect_fraction,
        jitter_ms=args.jitter_ms,
        seed=args.seed,
    )

    async def main():
        server = await preflight(url, api_key, workload.voice_id)
        print_progress(
            f"{url} ({server.describe()}): {workload.users} users over {workload.ramp_s:g} s, "
            f"for {workload.duration_s:g} s"
        )
        result = await LoadRun(url, api_key, workload, progress=print_progress).run()
        return build_report(url, server, workload, result)

    report = asyncio.run(main())
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(format_text(report))
    return 0 if report.held else EXIT_NOT_HELD
