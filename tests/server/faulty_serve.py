"""`csmstream serve` with a device that breaks on demand: once the file named by CSMSTREAM_TEST_BREAK_FILE
exists, every engine step raises (as a lost or corrupted GPU would), including the retries of single rows.

Only the step is patched; everything else is the real server process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from csmstream.cli import main
from csmstream.engine.csm_engine import CsmEngine

BREAK_FILE = Path(os.environ["CSMSTREAM_TEST_BREAK_FILE"])
_real_run_step = CsmEngine._run_step


def _run_step(self, sessions):
    if BREAK_FILE.exists():
        raise RuntimeError("device lost (injected by faulty_serve.py)")
    return _real_run_step(self, sessions)


CsmEngine._run_step = _run_step

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
