"""Everything about the model on the device: the int8 inference arithmetic and its
backends (``inference/``), loading a verified bundle (``bundle``), which bundle the agent
starts with (``selection``), the generic model shipped in the package (``shipped/``),
updates over the air with self-test, guard and rollback (``ota/``), and the
``edge-agent model`` commands (``bench``, ``demo``)."""
