"""pyvrrp: a VRRP high-availability agent for LVS scheduler pairs."""

__version__ = "0.1.0"
