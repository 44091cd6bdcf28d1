"""Security for the platform's HTTP services, plugged in at the request seam.

Every piece here is a guard (``ngsi/server/guards.py``) or serves one, so that a service
gains it by configuration (``-guard module:factory``) and its routes never change. The
package is to hold:

* rate limits (``ratelimit``): a token bucket per caller, 429 past it;
* the identity manager (Keyrock-compatible users, applications, OAuth2 tokens);
* authorization (roles and permissions, XACML-like policy decisions);
* PEP guards, and a PEP proxy (Wilma-compatible) for services that are not ours;
* privacy (what a caller may see of an entity's attributes);
* audit (who did what, from the identity the guards put in the request context).

It is its own package, beside ``ngsi``, ``broker`` and ``iot_agent``, because it depends
on them only through the seam: nothing in them imports from here.
"""
