"""Log lines of the backends' libraries that are false alarms here, dropped while a model is exported or loaded.

Nothing here redirects ``sys.stdout``: that would redirect every thread of a host service. Exports, which
draw progress bars (NNCF, optimum), run in a child process whose output is captured and logged
(:mod:`search.encoding.export_worker`); loading and encoding print nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["FALSE_ALARMS", "quiet_false_alarms"]

FALSE_ALARMS = {
    # optimum-intel, on every offline load of a local folder (its hub-cache probe fails): the folder holds the
    # export, which is what it then loads
    "optimum.intel.openvino.modeling_base": "Could not infer whether the model was already converted",
    # sentence-transformers, while exporting: this project saves every export (and finds it the next time)
    "sentence_transformers.backend.utils": "model is heavily recommended to avoid having to export it again",
}


class _DropFalseAlarm(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def quiet_false_alarms() -> Iterator[None]:
    """Drop the warnings of :data:`FALSE_ALARMS` (only those) while a backend model is exported or loaded."""
    added = [(logging.getLogger(name), _DropFalseAlarm(text)) for name, text in FALSE_ALARMS.items()]
    for log, flt in added:
        log.addFilter(flt)
    try:
        yield
    finally:
        for log, flt in added:
            log.removeFilter(flt)
