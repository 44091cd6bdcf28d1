"""The apps' Kubernetes back end: the same manifest (``orchestrator/apps/manifest.py``) as the
local back end, deployed as Kubernetes objects through the official ``kubernetes`` client.

* ``names``: namespace, object, label and environment names (pure);
* ``render``: an app's objects (Namespace, ConfigMap, Secret, Deployment, Service,
  NetworkPolicy) from its manifest (pure);
* ``dockerfile``: the Dockerfile an app's source is built with, per runtime, and its image
  name (pure);
* ``platform``: the platform's own objects (PostgreSQL, broker, agent, history, identity
  manager, dashboard, WAZIUP API, rules, orchestrator), as in ``deploy/kubernetes/`` (pure);
* ``images``: the source digest and the ``docker build``/``docker push`` of an app (I/O);
* ``backend``: ``KubernetesBackend``: deploy, list, status, logs, restart, scale, undeploy (I/O);
* ``adapter``: ``ClusterBackend``: ``KubernetesBackend`` behind the local back end's interface,
  with what the platform does around an app (tenant, credentials, sensors, subscriptions to
  the app's Service), for ``waziup orchestrator -backend kubernetes`` (I/O).

docs/kubernetes.md says how to run it on a real cluster.
"""
