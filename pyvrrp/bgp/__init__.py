"""Announcing service IPs upstream through an existing BGP speaker (issue 17).

- :mod:`pyvrrp.bgp.decide`: pure; what to announce with which attributes, and why;
- :mod:`pyvrrp.bgp.exabgp`: the ExaBGP text-API process (``pyvrrp exabgp-process``) and the
  daemon side it follows over the control socket.

Nothing here is imported unless a config has an ``announce`` table.
"""
