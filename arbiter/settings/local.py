"""Development and demo settings: DEBUG on unless the environment says otherwise."""

import os

os.environ.setdefault("DEBUG", "true")

from arbiter.settings.base import *  # noqa: F403
