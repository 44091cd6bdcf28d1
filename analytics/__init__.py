"""Analytics services of the platform: what is done with context data after the broker.

* ``analytics.history``: the history service (QuantumLeap-compatible time series of
  every attribute the broker notifies, :8668).
"""
