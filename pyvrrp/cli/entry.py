"""The ``pyvrrp`` console entry point (also ``python -m pyvrrp``).

``pyvrrp run`` is the daemon, and a (re)starting daemon should reach its engine
as soon as possible: a preferred node preempts back one Master_Down_Interval
after it starts listening.  So ``run`` first starts listening for VRRP
(``pyvrrp.runtime.early_listen``, stdlib only), then takes the short path
(:func:`pyvrrp.cli.run.main_fast`: argparse, no typer, no other commands).
Everything else, and ``run --help``, goes to the typer application.

Started as ``python -S`` (the ``pyvrrpd`` launcher, :mod:`pyvrrp.cli.launcher`), the
interpreter has not imported ``site`` yet: that is done here, once listening has begun.
"""

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
        _site()
        # structlog renders with rich when it can import it (rich comes with typer);
        # the daemon never needs it and it costs ~30 ms of start-up.
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
        from pyvrrp.cli.run import main_fast

        sys.exit(main_fast(argv[1:]))
    _site()
    from pyvrrp.cli.app import main as app_main

    app_main()


_site_done = False


def _site() -> None:
    """Add site-packages (and run .pth files, sitecustomize) if ``python -S`` skipped them."""
    global _site_done
    if sys.flags.no_site and not _site_done:
        _site_done = True
        import site

        site.main()
