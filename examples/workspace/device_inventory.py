"""Parameters inferred from type hints and the docstring (no @param); a plain `def` workflow."""

import datetime
import enum
from typing import Literal, Optional

from bifrost import workflow


class DeviceKind(enum.Enum):
    WORKSTATION = "workstation"
    SERVER = "server"
    NETWORK = "network"


@workflow(name="device_inventory", description="Summarize devices seen since a date", category="RMM")
def device_inventory(
    kind: DeviceKind,
    since: datetime.date,
    os_family: Literal["windows", "macos", "linux"] = "windows",
    tags: Optional[list[str]] = None,
    limit: int = 50,
    include_offline: bool = False,
):
    """Summarize the RMM device inventory.

    Args:
        kind: Which class of device to include.
        since: Only devices seen on or after this date.
        os_family: Operating system family.
        tags: Optional RMM tags to filter on.
        limit: Maximum devices to return.
        include_offline: Include devices that are offline now.
    """
    age = (datetime.date(2026, 1, 1) - since).days
    return {
        "kind": kind.value,
        "days": age,
        "os": os_family,
        "tags": tags or [],
        "limit": limit,
        "offline": include_offline,
    }
