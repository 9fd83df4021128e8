"""csmstream: self-hosted real-time speech around the Sesame Conversational Speech Model (CSM-1B)."""

__version__ = "0.1.0"
