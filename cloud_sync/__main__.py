"""``python -m cloud_sync``: the same as the ``cloud-sync`` command."""

from cloud_sync.cli import main

raise SystemExit(main())
