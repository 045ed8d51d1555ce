"""The ``pyvrrp`` console entry point (also ``python -m pyvrrp``).

``pyvrrp run`` is the daemon, and a (re)starting daemon should reach its engine
as soon as possible: a preferred node preempts back one Master_Down_Interval
after it starts listening.  So ``run`` first starts listening for VRRP
(``pyvrrp.runtime.early_listen``, stdlib only), then takes the short path
(:func:`pyvrrp.cli.run.main_fast`: argparse, no typer, no other commands).
Everything else, and ``run --help``, goes to the typer application.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "run" and not {"-h", "--help"} & set(argv):
        from pyvrrp.runtime import early_listen

        listener = early_listen.start(argv[1:])
        if listener is not None:
            # the engines of an unchanged config run from here on (pyvrrp.runtime.fast_start)
            from pyvrrp.runtime import fast_start

            fast_start.start(argv[1:], listener)
        # structlog renders with rich when it can import it (rich comes with typer);
        # the daemon never needs it and it costs ~30 ms of start-up.
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
        from pyvrrp.cli.run import main_fast

        sys.exit(main_fast(argv[1:]))
    from pyvrrp.cli.app import main as app_main

    app_main()
