"""The advisor: the control value that keeps every predicted channel inside its alarm
limits, shown with its predicted margin, and written through an output only where the
config enables it, behind guards (docs/advisor.md)."""
