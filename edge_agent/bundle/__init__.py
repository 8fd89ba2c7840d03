"""Loading model bundles on the device: verify everything, then run the golden vectors."""
