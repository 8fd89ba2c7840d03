"""The doctor's checks: one explicit list, run in this order, one signature each
(``check(context: DoctorContext) -> list[Finding]``).

Adding a check: a module with ``CHECK = "name"`` and ``check(context)``, one line here,
a line in docs/operations.md and a test in tests/edge_agent/doctor/.
"""

from __future__ import annotations

from edge_agent.doctor import actions, clock, cloud, configfile, disk, model, serial, store
from edge_agent.doctor.base import DoctorCheck

CHECKS: tuple[DoctorCheck, ...] = (
    DoctorCheck(configfile.CHECK, configfile.check, needs_config=False),
    DoctorCheck(serial.CHECK, serial.check),
    DoctorCheck(model.CHECK, model.check),
    DoctorCheck(store.CHECK, store.check),
    DoctorCheck(clock.CHECK, clock.check, needs_config=False),
    DoctorCheck(disk.CHECK, disk.check),
    DoctorCheck(cloud.CHECK, cloud.check),
    DoctorCheck(actions.CHECK, actions.check),
)
