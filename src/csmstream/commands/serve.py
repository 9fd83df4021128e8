"""`csmstream serve`: the HTTP + WebSocket speech server around one engine.

Flags override `Settings` (which reads `CSMSTREAM_*` from the environment). `--port 0` picks a free port;
the actual address is printed, once the engine has started, as `csmstream: listening on http://HOST:PORT`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

from csmstream.errors import CsmstreamError

LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]
# How long a stopping server waits for open streams before closing them.
GRACEFUL_SHUTDOWN_S = 5
# The largest WebSocket message accepted (uvicorn's default, stated): a bigger one closes that connection with
# 1009 (message too big). The realtime protocol's own limit per audio append is far below it.
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Exit status when the engine became unhealthy (a persistent device error): non-zero, so supervisors restart.
EXIT_ENGINE_FAILED = 3
# Seconds between the engine failing and the server stopping: enough to deliver the errors to the clients.
FATAL_DRAIN_S = 2.0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the streaming speech server (WebSocket, OpenAI and Google APIs)"
    )
    p.add_argument("--model", default=None, help="checkpoint directory or hub id (default: sesame/csm-1b)")
    p.add_argument("--engine", choices=["auto", "csm", "piper"], default=None, help="which speech engine")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-slots", type=int, default=None, help="streams generated at once (default 8)")
    p.add_argument(
        "--max-queue", type=int, default=None, help="streams that may wait for a slot (default 32)"
    )
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument(
        "--kv-buckets",
        type=int,
        default=None,
        help="attention spans per compiled step shape on a GPU (default 5); 1 compiles 5x fewer shapes at "
        "warm-up, each step attending over the whole window",
    )
    p.add_argument(
        "--voices-dir", default=None, help="the user voice library (default ~/.local/share/csmstream/voices)"
    )
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    # fine-tuned voices
    p.add_argument(
        "--max-adapters",
        type=int,
        default=None,
        help="fine-tuned voices (LoRA adapters) held on the device at once; 0 serves none (default 4)",
    )
    p.add_argument(
        "--max-lora-rank", type=int, default=None, help="the largest adapter rank served (default 16)"
    )
    p.add_argument(
        "--merge-voice",
        default=None,
        metavar="VOICE_ID",
        help="merge this fine-tuned voice's adapter into the weights: fastest for a server of that one voice",
    )
    # the conversation (/v1/realtime)
    p.add_argument(
        "--llm-base-url", default=None, help="OpenAI-compatible chat endpoint, e.g. http://localhost:11434/v1"
    )
    p.add_argument("--llm-model", default=None, help="the LLM's model name at that endpoint")
    p.add_argument("--llm-api-key", default=None, help="the LLM endpoint's API key")
    p.add_argument("--llm-gguf", default=None, help="embedded llama.cpp LLM: a GGUF file or hub id")
    p.add_argument(
        "--no-default-llm",
        dest="default_llm",
        action="store_false",
        default=None,
        help="with no LLM configured, don't converse with the bundled small model (CSMSTREAM_DEFAULT_LLM=0)",
    )
    p.add_argument("--persona", default=None, help="the assistant's system prompt (default: Maya)")
    p.add_argument(
        "--stt-model", default=None, help="faster-whisper model dir or hub id (default: bundled tiny.en)"
    )
    p.add_argument(
        "--no-turn-model",
        dest="turn_model",
        action="store_false",
        default=None,
        help="semantic_vad by rules alone, without the bundled end-of-turn model (CSMSTREAM_TURN_MODEL=0)",
    )
    # server-only knobs (not engine settings)
    p.add_argument(
        "--ws-send-buffer-kb",
        type=int,
        default=None,
        help="audio a WebSocket client may leave unread before its request is cancelled (default 8192)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=None, help="largest voice upload accepted (default 16)"
    )
    p.add_argument(
        "--max-body-kb",
        type=int,
        default=None,
        help="largest request body other than a voice upload, e.g. a JSON speech request (default 64)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="on SIGTERM: seconds running streams may take to finish before they are ended (default 30)",
    )
    # scale-out on Ray Serve (src/csmstream/scale/; needs the `ray` extra)
    p.add_argument(
        "--ray",
        action="store_true",
        help="serve with N engine replicas behind Ray Serve (pip install csmstream[ray])",
    )
    p.add_argument(
        "--replicas", type=int, default=1, help="with --ray: engine replicas, one engine each (default 1)"
    )
    p.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="with --ray: autoscale up to this many on queued streams",
    )
    p.add_argument(
        "--replica-cpus",
        type=float,
        default=1.0,
        help="with --ray: CPUs Ray reserves per replica (default 1)",
    )
    p.add_argument(
        "--replica-gpus",
        type=float,
        default=None,
        help="with --ray: GPUs per replica (default 1 for CSM when the cluster has GPUs, else 0)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="with --ray: the Ray cluster (default $RAY_ADDRESS, else a local one)",
    )
    p.set_defaults(func=run)


def _flags(args: argparse.Namespace) -> dict:
    """The settings given as flags (None: not given), by `Settings` field name."""
    return {
        "model": args.model,
        "engine": args.engine,
        "host": args.host,
        "port": args.port,
        "max_slots": args.max_slots,
        "max_queue": args.max_queue,
        "device": args.device,
        "dtype": args.dtype,
        "kv_buckets": args.kv_buckets,
        "voices_dir": args.voices_dir,
        "max_adapters": args.max_adapters,
        "max_lora_rank": args.max_lora_rank,
        "merge_voice": args.merge_voice,
        "llm_base_url": args.llm_base_url,
        "llm_model": args.llm_model,
        "llm_api_key": args.llm_api_key,
        "llm_gguf": args.llm_gguf,
        "default_llm": getattr(args, "default_llm", None),
        "persona": args.persona,
        "stt_model": args.stt_model,
        "turn_model": getattr(args, "turn_model", None),
    }


def _settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from csmstream.config import Settings

    flags = _flags(args)
    try:
        return Settings(**{key: value for key, value in flags.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CsmstreamError(f"invalid settings: {problems}") from None


def _options(args: argparse.Namespace):
    from csmstream.server.options import ServerOptions

    overrides = {}
    if args.ws_send_buffer_kb is not None:
        if args.ws_send_buffer_kb < 1:
            raise CsmstreamError("--ws-send-buffer-kb must be at least 1")
        overrides["ws_send_buffer_bytes"] = args.ws_send_buffer_kb * 1024
    if args.max_upload_mb is not None:
        if args.max_upload_mb <= 0:
            raise CsmstreamError("--max-upload-mb must be positive")
        overrides["max_upload_bytes"] = int(args.max_upload_mb * 1024 * 1024)
    if args.max_body_kb is not None:
        if args.max_body_kb < 1:
            raise CsmstreamError("--max-body-kb must be at least 1")
        overrides["max_body_bytes"] = args.max_body_kb * 1024
    return ServerOptions(**overrides)


def _bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so that `--port 0` has a real port to announce."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CsmstreamError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from csmstream.engine.factory import build_engine
    from csmstream.pipeline.llm.default_model import with_default_llm
    from csmstream.server.app import create_app
    from csmstream.server.drain import DEFAULT_DRAIN_TIMEOUT_S, Drain
    from csmstream.server.log_redaction import install_log_redaction
    from csmstream.voices.library import VoiceLibrary

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_log_redaction()  # uvicorn logs URLs whole: no `?api_key=` may reach the log
    if getattr(args, "ray", False):
        return _run_on_ray(args)
    if getattr(args, "replicas", 1) != 1 or getattr(args, "max_replicas", None) is not None:
        raise CsmstreamError("--replicas and --max-replicas need --ray")
    settings, llm_line = with_default_llm(_settings(args))
    logging.getLogger("csmstream").info(llm_line)
    options = _options(args)
    voices = VoiceLibrary(settings.resolved_voices_dir())
    engine = build_engine(settings, voices)
    app = create_app(settings, engine, voices, options)

    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    drain_timeout = getattr(args, "drain_timeout", None)
    if drain_timeout is not None and drain_timeout < 0:
        raise CsmstreamError("--drain-timeout must be zero or more seconds")
    drain_timeout_s = DEFAULT_DRAIN_TIMEOUT_S if drain_timeout is None else drain_timeout

    class AnnouncingServer(uvicorn.Server):
        drain: Drain | None = None

        def handle_exit(self, sig, frame) -> None:  # noqa: ANN001
            # SIGTERM (a supervisor, `docker stop`, systemd) drains first (server/drain.py); a second one
            # hurries the drain. It is not recorded as uvicorn records signals (uvicorn re-raises them after
            # shutting down, and the default action of SIGTERM would make the exit status -15): a drained
            # server exits 0. SIGINT (Ctrl-C) keeps uvicorn's behaviour: stop now.
            if sig != signal.SIGTERM or self.should_exit:
                super().handle_exit(sig, frame)
            elif self.drain is None:
                self.drain = Drain(engine, drain_timeout_s)
            else:
                self.drain.hurry()

        async def on_tick(self, counter: int) -> bool:
            if self.drain is not None and not self.should_exit and self.drain.ready_to_exit():
                self.should_exit = True
            return await super().on_tick(counter)

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(
                    f"csmstream: listening on {url} (engine {engine.name}, model {engine.model_name})",
                    flush=True,
                )

    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        log_config=None,  # keep the logging set up above
    )
    server = AnnouncingServer(config)
    fatal: list[str] = []

    def on_fatal(reason: str) -> None:  # from the engine's thread: uvicorn polls should_exit
        fatal.append(reason)
        # a short drain first: the errors already handed to the clients go out, /health says `unhealthy`
        threading.Timer(FATAL_DRAIN_S, lambda: setattr(server, "should_exit", True)).start()

    engine.on_fatal = on_fatal
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if fatal:
        print(
            f"csmstream: the speech engine failed, exiting so a supervisor restarts it: {fatal[0]}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ENGINE_FAILED
    return 0


def _run_on_ray(args: argparse.Namespace) -> int:
    """`--ray`: the replicas build their own engines from these settings (src/csmstream/scale/ray_serve.py)."""
    import dataclasses

    try:
        import ray.serve  # noqa: F401

        from csmstream.scale import ray_serve
    except ImportError as exc:
        raise CsmstreamError(f"--ray needs Ray Serve: pip install 'csmstream[ray]' ({exc})") from None
    options = dataclasses.asdict(_options(args))  # every replica builds the same ServerOptions
    if args.drain_timeout is not None and args.drain_timeout < 0:
        raise CsmstreamError("--drain-timeout must be zero or more seconds")
    return ray_serve.run(args, _settings(args), options, _flags(args))
