"""``python -m pyvrrp``: same as the ``pyvrrp`` command."""

from pyvrrp.cli.entry import main

main()
