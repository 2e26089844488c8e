"""bulkimport: load large CSV files of leads into a call-center campaign through the Import API.

The public API for library use; everything else is private and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

import logging as _logging

# A library logs; the application decides where to. Without this, a record logged before
# the command line configures logging would reach Python's last-resort handler.
_logging.getLogger("bulkimport").addHandler(_logging.NullHandler())
