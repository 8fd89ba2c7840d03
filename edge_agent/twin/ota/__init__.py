"""The twin's releases over the air: the model OTA's download, archive check, layout and
self-test child, with the twin's own checks, self-test and live guard (docs/ota.md)."""
