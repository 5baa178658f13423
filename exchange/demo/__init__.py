"""`lijiao demo`: a whole city on one machine, with every caller on mutual TLS.

``main`` runs the exchange; ``pki``, ``governance``, ``adapters`` and ``audit`` the
tour's other parts.
"""
