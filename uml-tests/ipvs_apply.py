"""Helper run inside a lab namespace: ``ipvs_apply.py apply CONFIG`` programs that
namespace's IPVS table from CONFIG's virtual_server sections (one reconcile, services kept);
``ipvs_apply.py stats`` prints the table's counters as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from pyvrrp.config.load import load_config
from pyvrrp.ipvs import kernel
from pyvrrp.ipvs.manager import IpvsManager


def main() -> int:
    if sys.argv[1] == "apply":
        mgr = IpvsManager(load_config(sys.argv[2]), apply=True, state_file=None)
        ops = asyncio.run(mgr.reconcile())
        print(json.dumps({"ops": [str(o) for o in ops], "errors": mgr.last_errors}))
        return 1 if mgr.last_errors else 0
    out = [
        {
            "service": str(sd.service.key),
            "conns": sd.stats.conns,
            "in_pkts": sd.stats.in_pkts,
            "out_pkts": sd.stats.out_pkts,
        }
        for sd in kernel.dump()
    ]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
