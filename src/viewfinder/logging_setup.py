"""Console logging for every entry point, INFO by default as seed 000 does."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s",
    )
