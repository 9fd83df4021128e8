"""The one audio format csmstream speaks: what Mimi decodes, what every protocol sends, what voices store."""

SAMPLE_RATE = 24_000  # Hz, mono
