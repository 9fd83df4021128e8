"""`csmstream loadtest`: simulated listeners against any csmstream deployment, over `/v1/tts/stream`.

- `texts.py`: the built-in utterances (about 3-12 s of speech each);
- `workload.py`: what the simulated users do: when they arrive, what each says, whether it cancels or hangs up;
- `listener.py`: the jitter buffer a listener plays through, and the underruns it hears (pure, any clock);
- `stream.py`: one request over a WebSocket, timed message by message (also used by `bench/capacity.py`);
- `preflight.py`: the address, the API key and the voice checked once, with a clear error, before any load;
- `runner.py`: the users run together against the deployment;
- `report.py`: the figures, the verdict, as text or JSON.
"""
