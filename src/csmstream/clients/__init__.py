"""Client code shared by the terminal commands (`say --server`, `chat`, `talk`): talking to a csmstream
server over its WebSocket protocols, and playing / capturing audio on the local sound card.

Nothing here imports torch or the server; `sounddevice` is optional (see `sound_device`).
"""
