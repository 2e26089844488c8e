"""``python -m bulkimport``: the same as the ``bulkimport`` command."""

from bulkimport.cli import main

main()
