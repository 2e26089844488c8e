"""bulkimport: load large CSV files of leads into a call-center campaign through the Import API.

The public API for library use; everything else is private and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"
