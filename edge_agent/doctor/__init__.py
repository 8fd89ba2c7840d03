"""`edge-agent doctor`: one check per module, each saying what is wrong and the fix."""
