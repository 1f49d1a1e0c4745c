"""``python -m clonequeue.producers._child REQUEST``: the validating helper (parallel.py)."""

from __future__ import annotations

import json
import sys

from clonequeue.producers.parallel import child_main

if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]), sys.stdout.buffer)
