"""The NGSI-v2 model, pure and I/O-free.

Internal entity form, shared by every module of the package and by the broker's stores
(plain dicts, so that they serialise as they are)::

    entity = {
        "id": str, "type": str, "servicePath": str,
        "attrs": {name: attr, ...},          # insertion order is rendering order
        "creDate": float, "modDate": float,  # epoch seconds
        "expDate": float,                    # only when dateExpires is set
        "location": {"attr": name, "geometry": {GeoJSON}},  # only when a geo attribute is set
    }
    attr = {
        "type": str, "value": Any,           # JSON value; DateTime values as epoch seconds (float)
        "md": {name: {"type": str, "value": Any}, ...},
        "creDate": float, "modDate": float,
    }
"""
