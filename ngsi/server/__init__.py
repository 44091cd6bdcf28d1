"""What every HTTP service of the platform shares on the way in: the request seam
(``guards``), the ASGI layer that runs it for Starlette services (``asgi``), the
correlator and the reply object."""
