"""Apps deployed from source: the manifest, the local back end (processes on this host),
the API (``/apps``) and the CLI (``waziup apps``). The Kubernetes back end is in ``kubernetes/``."""
