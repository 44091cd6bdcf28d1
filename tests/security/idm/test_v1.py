"""The /v1 management API (also at /v3): tokens, users, organizations, applications, roles,
permissions and assignments, with Keyrock's shapes and status codes.

Reference: ``reference/keyrock/apiary.apib`` (each test names its section);
``security-history-orchestration.md`` §1 "Management REST API".
"""

from __future__ import annotations

import pytest

from .conftest import ADMIN_PASSWORD, IdM

pytestmark = pytest.mark.anyio


async def test_auth_tokens(idm: IdM) -> None:
    """apiary "Authentication [/v1/auth/tokens]": password and token methods, info, delete."""
    r = await idm.http.post("/v1/auth/tokens", json={"name": "admin@test.com", "password": ADMIN_PASSWORD})
    assert r.status_code == 201 and r.json()["token"]["methods"] == ["password"]
    subject = r.headers["X-Subject-Token"]
    assert r.json()["token"]["expires_at"].endswith("Z")
    by_token = await idm.http.post("/v3/auth/tokens", json={"token": subject})  # Wilma logs in under /v3
    assert by_token.status_code == 201 and by_token.json()["token"]["methods"] == ["token"]
    info = await idm.http.get("/v1/auth/tokens", headers={"X-Auth-Token": subject, "X-Subject-Token": subject})
    assert info.status_code == 200
    body = info.json()
    assert body["valid"] is True and body["access_token"] == subject
    assert set(body["User"]) == {"id", "username", "email", "date_password", "enabled", "admin"} and body["User"]["admin"]
    deleted = await idm.http.delete("/v1/auth/tokens", headers={"X-Auth-Token": subject, "X-Subject-Token": subject})
    assert deleted.status_code == 204
    assert (await idm.http.get("/v1/users", headers={"X-Auth-Token": subject})).status_code == 401
    wrong = await idm.http.post("/v1/auth/tokens", json={"name": "admin@test.com", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": {"message": "Invalid email or password", "code": 401,
                                                                     "title": "Unauthorized"}}
    assert (await idm.http.post("/v1/auth/tokens", json={"name": "x"})).status_code == 400
    assert (await idm.http.post("/v1/auth/tokens", content=b"{nope")).status_code == 400


async def test_api_token_expires(idm: IdM) -> None:
    idm.clock.advance(3600)
    r = await idm.http.get("/v1/users", headers=idm.admin())
    assert r.status_code == 401 and r.json()["error"]["code"] == 401


async def test_users_crud(idm: IdM) -> None:
    """apiary "Users [/v1/users]", "User [/v1/users/{user_id}]"."""
    assert (await idm.http.get("/v1/users")).status_code == 401
    alice = await idm.user("alice", "alice-password")
    assert set(alice) == {"id", "image", "gravatar", "enabled", "admin", "username", "email", "date_password"}
    dup = await idm.http.post("/v1/users", headers=idm.admin(),
                              json={"user": {"username": "alice2", "email": "ALICE@test.com", "password": "x"}})
    assert dup.status_code == 409
    listed = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
    assert {u["username"] for u in listed} == {"admin", "alice"} and "password_hash" not in str(listed)
    alice_token = await idm.login("alice", "alice-password")
    mine = {"X-Auth-Token": alice_token}
    assert (await idm.http.get("/v1/users", headers=mine)).status_code == 403
    assert (await idm.http.get(f"/v1/users/{alice['id']}", headers=mine)).json()["user"]["username"] == "alice"
    assert (await idm.http.get("/v1/users/admin", headers=mine)).status_code == 403
    assert (await idm.http.get("/v1/users/nobody", headers=idm.admin())).status_code == 404
    r = await idm.http.patch(f"/v1/users/{alice['id']}", headers=mine, json={"user": {"username": "alice_new"}})
    assert r.status_code == 200 and r.json() == {"values_updated": {"username": "alice_new"}}
    assert (await idm.http.patch(f"/v1/users/{alice['id']}", headers=mine, json={"user": {"admin": True}})).status_code == 403
    r = await idm.http.patch(f"/v1/users/{alice['id']}", headers=mine, json={"user": {"password": "new-password"}})
    assert r.status_code == 200 and "password" not in r.json()["values_updated"]
    await idm.login("alice_new", "new-password")
    assert (await idm.http.delete(f"/v1/users/{alice['id']}", headers=idm.admin())).status_code == 204
    assert (await idm.http.get(f"/v1/users/{alice['id']}", headers=idm.admin())).status_code == 404


async def test_organizations_and_members(idm: IdM) -> None:
    """apiary "Organizations", "Members of an organization", "User - Organization Relationship(s)"."""
    alice = await idm.user("alice", "alice-password")
    bob = await idm.user("bob", "bob-password")
    alice_h = {"X-Auth-Token": await idm.login("alice", "alice-password")}
    bob_h = {"X-Auth-Token": await idm.login("bob", "bob-password")}
    r = await idm.http.post("/v1/organizations", headers=alice_h, json={"organization": {"name": "Org", "description": "d"}})
    assert r.status_code == 201
    org = r.json()["organization"]
    assert set(org) == {"id", "image", "name", "description"}
    listing = (await idm.http.get("/v1/organizations", headers=alice_h)).json()["organizations"]
    assert listing == [{"role": "owner", "Organization": {"id": org["id"], "name": "Org", "description": "d",
                                                          "website": None, "image": "default"}}]
    o = f"/v1/organizations/{org['id']}"
    assert (await idm.http.get(o, headers=bob_h)).status_code == 403
    r = await idm.http.put(f"{o}/users/{bob['id']}/organization_roles/member", headers=alice_h)
    assert r.status_code == 201 and r.json() == {"user_organization_assignments": {"role": "member", "user_id": bob["id"],
                                                                                    "organization_id": org["id"]}}
    assert (await idm.http.get(o, headers=bob_h)).status_code == 200
    assert (await idm.http.patch(o, headers=bob_h, json={"organization": {"description": "x"}})).status_code == 403
    r = await idm.http.patch(o, headers=alice_h, json={"organization": {"description": "new", "website": "http://t"}})
    assert r.json() == {"values_updated": {"description": "new", "website": "http://t"}}
    users = (await idm.http.get(f"{o}/users", headers=bob_h)).json()["organization_users"]
    assert {(u["user_id"], u["role"]) for u in users} == {(alice["id"], "owner"), (bob["id"], "member")}
    one = await idm.http.get(f"{o}/users/{bob['id']}/organization_roles", headers=bob_h)
    assert one.json() == {"organization_user": {"user_id": bob["id"], "organization_id": org["id"], "role": "member"}}
    assert (await idm.http.put(f"{o}/users/{bob['id']}/organization_roles/boss", headers=alice_h)).status_code == 404
    assert (await idm.http.delete(f"{o}/users/{bob['id']}/organization_roles/member", headers=alice_h)).status_code == 204
    assert (await idm.http.delete(f"{o}/users/{bob['id']}/organization_roles/member", headers=alice_h)).status_code == 404
    assert (await idm.http.delete(o, headers=alice_h)).status_code == 204
    assert (await idm.http.get(o, headers=idm.admin())).status_code == 404


async def test_applications_roles_permissions(idm: IdM) -> None:
    """apiary "Applications", "Application", "Roles", "Role", "Permissions", "Permission",
    "Role - Permission Relationship(s)"."""
    await idm.user("alice", "alice-password")
    alice_h = {"X-Auth-Token": await idm.login("alice", "alice-password")}
    app = await idm.application(alice_h["X-Auth-Token"], name="Test_application 1")
    assert app["secret"] and app["jwt_secret"] and app["token_types"] == "bearer,jwt,permanent"
    a = f"/v1/applications/{app['id']}"
    shown = (await idm.http.get(a, headers=alice_h)).json()["application"]
    assert shown["secret"] is None and shown["name"] == "Test_application 1"  # the secret is shown once
    listed = (await idm.http.get("/v1/applications", headers=alice_h)).json()["applications"]
    assert [x["id"] for x in listed] == [app["id"]] and "secret" not in listed[0]
    r = await idm.http.patch(a, headers=alice_h, json={"application": {"name": "new name", "token_types": ["permanent"]}})
    assert r.status_code == 200
    assert r.json()["values_updated"] == {"name": "new name", "token_types": "bearer,permanent", "jwt_secret": None}
    roles = (await idm.http.get(f"{a}/roles", headers=alice_h)).json()["roles"]
    assert roles[:2] == [{"id": "provider", "name": "Provider"}, {"id": "purchaser", "name": "Purchaser"}]
    r = await idm.http.post(f"{a}/roles", headers=alice_h, json={"role": {"name": "role 1"}})
    assert r.status_code == 201
    role = r.json()["role"]
    assert role == {"id": role["id"], "name": "role 1", "is_internal": False, "oauth_client_id": app["id"]}
    assert (await idm.http.patch(f"{a}/roles/{role['id']}", headers=alice_h, json={"role": {"name": "r"}})).json() == \
        {"values_updated": {"name": "r"}}
    assert (await idm.http.delete(f"{a}/roles/provider", headers=alice_h)).status_code == 403
    r = await idm.http.post(f"{a}/permissions", headers=alice_h,
                            json={"permission": {"name": "permission 1", "action": "GET", "resource": "login", "is_regex": False,
                                                 "ngsi": {"entities": [{"type": "Room"}]}}})
    assert r.status_code == 201
    perm = r.json()["permission"]
    assert perm["is_internal"] is False and perm["oauth_client_id"] == app["id"] and perm["ngsi"] == {"entities": [{"type": "Room"}]}
    bad = await idm.http.post(f"{a}/permissions", headers=alice_h,
                              json={"permission": {"name": "p", "action": "GET", "resource": "(", "is_regex": True}})
    assert bad.status_code == 400
    assert (await idm.http.post(f"{a}/permissions", headers=alice_h, json={"permission": {"name": "p"}})).status_code == 400
    perms = (await idm.http.get(f"{a}/permissions", headers=alice_h)).json()["permissions"]
    assert {p["id"] for p in perms} >= {"1", "2", "3", "4", "5", "6", perm["id"]}
    r = await idm.http.put(f"{a}/roles/{role['id']}/permissions/{perm['id']}", headers=alice_h)
    assert r.status_code == 201 and r.json() == {"role_permission_assignments": {"role_id": role["id"], "permission_id": perm["id"]}}
    assigned = (await idm.http.get(f"{a}/roles/{role['id']}/permissions", headers=alice_h)).json()
    assert [p["id"] for p in assigned["role_permission_assignments"]] == [perm["id"]]
    assert (await idm.http.put(f"{a}/roles/provider/permissions/{perm['id']}", headers=alice_h)).status_code == 403
    assert (await idm.http.delete(f"{a}/roles/{role['id']}/permissions/{perm['id']}", headers=alice_h)).status_code == 204
    r = await idm.http.patch(f"{a}/permissions/{perm['id']}", headers=alice_h,
                             json={"permission": {"name": "new name permission", "description": "d"}})
    assert r.json() == {"values_updated": {"name": "new name permission", "description": "d"}}
    assert (await idm.http.delete(f"{a}/permissions/{perm['id']}", headers=alice_h)).status_code == 204
    assert (await idm.http.get(f"{a}/permissions/{perm['id']}", headers=alice_h)).status_code == 404
    assert (await idm.http.get("/v1/applications/nope", headers=alice_h)).status_code == 404
    assert (await idm.http.delete(a, headers=alice_h)).status_code == 204


async def test_who_may_manage_an_application(idm: IdM) -> None:
    """Keyrock's internal permissions: the provider manages; a purchaser assigns public roles;
    a user without a role in the application cannot even read it."""
    await idm.user("alice", "alice-password")
    bob = await idm.user("bob", "bob-password")
    carol = await idm.user("carol", "carol-password")
    alice_h = {"X-Auth-Token": await idm.login("alice", "alice-password")}
    bob_h = {"X-Auth-Token": await idm.login("bob", "bob-password")}
    app = await idm.application(alice_h["X-Auth-Token"])
    a = f"/v1/applications/{app['id']}"
    assert (await idm.http.get(a, headers=bob_h)).status_code == 403
    assert (await idm.http.get("/v1/applications", headers=bob_h)).json() == {"applications": []}
    role = (await idm.http.post(f"{a}/roles", headers=alice_h, json={"role": {"name": "viewer"}})).json()["role"]
    r = await idm.http.put(f"{a}/users/{bob['id']}/roles/purchaser", headers=alice_h)
    assert r.status_code == 201 and r.json() == {"role_user_assignments": {"role_id": "purchaser", "user_id": bob["id"],
                                                                            "oauth_client_id": app["id"]}}
    assert (await idm.http.get(a, headers=bob_h)).status_code == 200
    assert (await idm.http.patch(a, headers=bob_h, json={"application": {"name": "x"}})).status_code == 403
    assert (await idm.http.post(f"{a}/roles", headers=bob_h, json={"role": {"name": "x"}})).status_code == 403
    assert (await idm.http.put(f"{a}/users/{carol['id']}/roles/{role['id']}", headers=bob_h)).status_code == 201  # public role: 5
    assert (await idm.http.put(f"{a}/users/{carol['id']}/roles/provider", headers=bob_h)).status_code == 403  # internal: 1
    users = (await idm.http.get(f"{a}/users", headers=bob_h)).json()["role_user_assignments"]
    assert {(u["user_id"], u["role_id"]) for u in users} >= {(bob["id"], "purchaser"), (carol["id"], role["id"])}
    mine = (await idm.http.get(f"{a}/users/{carol['id']}/roles", headers=bob_h)).json()["role_user_assignments"]
    assert mine == [{"user_id": carol["id"], "role_id": role["id"]}]
    assert (await idm.http.delete(f"{a}/users/{carol['id']}/roles/{role['id']}", headers=alice_h)).status_code == 204
    assert (await idm.http.delete(f"{a}/users/{carol['id']}/roles/{role['id']}", headers=alice_h)).status_code == 404
    assert (await idm.http.put(f"{a}/users/nobody/roles/{role['id']}", headers=alice_h)).status_code == 404
    assert (await idm.http.put(f"{a}/users/{carol['id']}/roles/nope", headers=alice_h)).status_code == 404


async def test_organization_role_assignments(idm: IdM) -> None:
    """apiary "Authorized Organizations in an application", "Roles of Organization in an
    Application", "Role - Organization Relationship in an Application"."""
    app = await idm.application()
    a = f"/v1/applications/{app['id']}"
    h = idm.admin()
    org = (await idm.http.post("/v1/organizations", headers=h, json={"organization": {"name": "o"}})).json()["organization"]
    role = (await idm.http.post(f"{a}/roles", headers=h, json={"role": {"name": "r"}})).json()["role"]
    path = f"{a}/organizations/{org['id']}/roles/{role['id']}/organization_roles/owner"
    r = await idm.http.put(path, headers=h)
    assert r.status_code == 201 and r.json() == {"role_organization_assignments": {
        "role_id": role["id"], "organization_id": org["id"], "oauth_client_id": app["id"], "role_organization": "owner"}}
    listed = (await idm.http.get(f"{a}/organizations", headers=h)).json()
    assert listed == {"role_organization_assignments": [{"organization_id": org["id"], "role_organization": "owner",
                                                          "role_id": role["id"]}]}
    one = (await idm.http.get(f"{a}/organizations/{org['id']}/roles", headers=h)).json()
    assert one == {"role_organization_assignments": [{"organization_id": org["id"], "role_id": role["id"]}]}
    assert (await idm.http.put(path.replace("/owner", "/boss"), headers=h)).status_code == 404
    assert (await idm.http.delete(path, headers=h)).status_code == 204


async def test_service_provider_configs(idm: IdM) -> None:
    """apiary "Service Provider [/v1/service_providers/configs]"."""
    await idm.application()
    body = (await idm.http.get("/v1/service_providers/configs", headers=idm.admin())).json()
    assert body == {"information": {"totalUsers": 1, "totalOrganizations": 0, "totalApplications": 1}}
