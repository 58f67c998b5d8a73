"""Work around a reference-count bug of PySide6 6.12 on CPython < 3.12.

PySide6 6.12.0's generated bindings return None from void methods (`update()`,
`processEvents()`, `setWindowTitle()`, ...) without taking a new reference. On CPython 3.12+
None is immortal and nothing happens; on 3.11 every such call lowers None's reference count
by one until the interpreter aborts with "Fatal Python error: none_dealloc" after a few
thousand calls (seconds into a session). PySide6 6.11 does not have the bug.

`guard()` detects the leak with a few probe calls and, only then, raises None's reference
count far out of reach (what CPython 3.12 does for every immortal object). None is a static
object that is never freed, so the higher count changes nothing else.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)
PROBES = 16
HEADROOM = 1 << 50


def leaks_none() -> bool:
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBES):
        probe.setObjectName("probe")
    return sys.getrefcount(None) <= before - PROBES // 2


def guard() -> bool:
    """Make None effectively immortal when the installed PySide6 leaks it; True if applied."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython" or not leaks_none():
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt, the first field of PyObject
    refcnt.value += HEADROOM
    log.debug("PySide6 leaks references to None: applied the immortal-None workaround")
    return True
