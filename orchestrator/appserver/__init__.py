"""The orchestrator's HTTP service (:8080): apps (``orchestrator/apps``), sensor discovery
(``orchestrator/discovery``) and external data sources (``orchestrator/sources``), each a
``Component`` mounted on one Starlette app behind the platform's request seam."""
