"""Analytics services of the platform: what is done with context data after the broker.

* ``analytics.history``: the history service (QuantumLeap-compatible time series of
  every attribute the broker notifies, :8668).
* ``analytics.rules``: the rules engine's pure core (Perseo-like JSON rules, windows, no
  signal, anomalies, derived entities, throttling, action rendering); its HTTP service on
  :9090 is not built yet (docs/rules.md).
* ``analytics.dashboard``: the platform's web page (:3000, docs/dashboard.md).
"""
