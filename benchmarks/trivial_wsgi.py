"""A WSGI app that does nothing: ``decision_latency.py`` measures its own floor with it.

It reads the request body and answers 201 with a small JSON body, as the decision
endpoint does, with no Django, no database and no model: what the client, gunicorn and
the loopback cost on the machine at the benchmark's rate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

BODY = json.dumps(
    {"id": "00000000-0000-4000-8000-000000000000", "action": {"key": "decline"}, "value": 0.0}
).encode()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response(
        "201 Created",
        [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
