"""``python -m pyvrrp``: same as the ``pyvrrp`` command."""

from pyvrrp.cli.app import main

main()
