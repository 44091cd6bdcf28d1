"""Authorization: policy decisions, apart from how a request reaches them.

Each module here decides from plain data (permissions as mappings, the request's action,
resource, tenant and NGSI payload) and does no I/O, so that the identity manager, PEP
guards and tests share one implementation of each policy language.
"""

# NGSI-aware authorization (request.py, policy.py, decide.py, visibility.py, pdp.py):
# docs/authorization.md. ``decide`` and ``Decision`` stay in ``security.authz.decide``.
from . import history as history  # registers the history service's routes with describe
from . import rules as rules  # and the rules service's
from . import orchestrator as orchestrator  # and the orchestrator's (apps, discovery, sources)
from .pdp import PDP as PDP
from .policy import Policy as Policy
from .policy import PolicyError as PolicyError
from .policy import PolicySet as PolicySet
from .policy import Subject as Subject
from .policy import load_policy_set as load_policy_set
from .policy import parse_policy_set as parse_policy_set
from .request import ACTIONS as ACTIONS
from .request import RequestResource as RequestResource
from .request import Target as Target
from .request import describe as describe
from .visibility import visible as visible
