"""Inviting project members by user id or e-mail before the API has seen them (issue 12 #17):
invited entries are listed, grant nothing, and become memberships on the user's first call."""
from __future__ import annotations

from tests.conftest import Api

PROJECTS = "/api/v1/projects"


def project(api) -> str:
    response = api.post(PROJECTS, {"name": "Zoo"})
    assert response.status_code == 201, response.json
    return f"{PROJECTS}/{response.json['data']['id']}"


def listed(api, base: str) -> list[tuple]:
    return [(m["user_id"], m["email"], m["role"], m["status"]) for m in api.get(f"{base}/members").json["data"]]


def signed_in(client, stack, sub: str, email: str | None = None, **claims) -> Api:
    return Api(client, stack.token(sub=sub, email=email or f"{sub}@example.com", groups=[], **claims))


def test_an_unknown_email_is_invited_and_joins_with_the_role_on_first_call(client, stack, api):
    # Given an owner invites an e-mail nobody has signed in with
    base = project(api)
    invited = api.post(f"{base}/members", {"email": "Erin@Example.com", "role": "editor"})
    # Then it is an invitation, listed after the members
    assert invited.status_code == 201, invited.json
    assert invited.json["data"] | {"added_at": None} == {
        "user_id": None, "email": "erin@example.com", "role": "editor", "status": "invited", "added_by": "alice",
        "added_at": None}
    assert listed(api, base) == [("alice", None, "owner", "active"), (None, "erin@example.com", "editor", "invited")]
    # When that user signs in (a token with that verified e-mail) and calls any route
    erin = signed_in(client, stack, "u-erin", email="erin@example.com")
    assert erin.get("/api/v1/me").status_code == 200
    # Then they are a member with the invited role, and the invitation is gone
    assert erin.get(base).json["data"]["role"] == "editor"
    assert listed(api, base) == [("alice", None, "owner", "active"), ("u-erin", None, "editor", "active")]
    activity = [a["action"] for a in api.get(f"{base}/activity").json["data"]]
    assert "member_invited" in activity and "invitation_accepted" in activity


def test_an_unknown_user_id_is_invited_and_joins_on_first_call(client, stack, api):
    # Given an invitation by sub of a user the API has never seen
    base = project(api)
    invited = api.post(f"{base}/members", {"user_id": "bob", "role": "annotator"})
    assert invited.status_code == 201 and invited.json["data"]["status"] == "invited"
    # When bob calls any route
    bob = signed_in(client, stack, "bob")
    assert bob.get(PROJECTS).status_code == 200
    # Then he is a member with that role
    assert [(p["id"], p["role"]) for p in bob.get(PROJECTS).json["data"]] == [(base.rsplit("/", 1)[1], "annotator")]
    assert listed(api, base)[-1] == ("bob", None, "annotator", "active")


def test_a_known_user_is_added_at_once_by_user_id_or_email(client, stack, api):
    # Given two users who have called the API
    signed_in(client, stack, "carol").get(PROJECTS)
    signed_in(client, stack, "dave", email="Dave@Example.com").get(PROJECTS)
    base = project(api)
    # When they are added by id and by e-mail (any case)
    by_id = api.post(f"{base}/members", {"user_id": "carol", "role": "viewer"})
    by_email = api.post(f"{base}/members", {"email": "dave@example.com", "role": "editor"})
    # Then both are members at once
    assert by_id.status_code == 201 and by_id.json["data"]["status"] == "active"
    assert by_email.status_code == 201 and by_email.json["data"]["user_id"] == "dave"
    assert [entry[3] for entry in listed(api, base)] == ["active"] * 3


def test_duplicates_are_conflicts_and_leave_one_entry(client, stack, api):
    # Given an e-mail invitation, a sub invitation and a known member
    signed_in(client, stack, "carol").get(PROJECTS)
    base = project(api)
    members = f"{base}/members"
    assert api.post(members, {"email": "erin@example.com", "role": "editor"}).status_code == 201
    assert api.post(members, {"user_id": "bob", "role": "viewer"}).status_code == 201
    assert api.post(members, {"user_id": "carol", "role": "viewer"}).status_code == 201
    before = listed(api, base)
    # When each is invited again (any role, any case)
    again = [api.post(members, {"email": "ERIN@example.com", "role": "viewer"}),
             api.post(members, {"user_id": "bob", "role": "viewer"}),
             api.post(members, {"email": "carol@example.com", "role": "editor"})]
    # Then each is a 409, and nothing changed
    assert [response.status_code for response in again] == [409, 409, 409], [r.json for r in again]
    assert "already" in again[0].json["error"]["message"]
    assert listed(api, base) == before


def test_the_body_names_exactly_one_user(api):
    base = project(api)
    for body in ({"role": "viewer"}, {"user_id": "bob", "email": "bob@example.com", "role": "viewer"},
                 {"email": "not-an-address", "role": "viewer"}):
        response = api.post(f"{base}/members", body)
        assert response.status_code == 422, (body, response.json)


def test_an_invitation_grants_nothing_until_accepted_and_an_unverified_email_does_not_accept_it(
        client, stack, api):
    # Given an invitation by e-mail
    base = project(api)
    api.post(f"{base}/members", {"email": "frank@example.com", "role": "owner"})
    # When someone signs in with that address unverified
    frank = signed_in(client, stack, "frank", email="frank@example.com", email_verified=False)
    # Then they are no member: the project does not exist for them, and the invitation waits
    assert frank.get(base).status_code == 404
    assert frank.get(f"{base}/members").status_code == 404
    assert listed(api, base)[-1] == (None, "frank@example.com", "owner", "invited")


def test_an_invitation_can_change_role_or_be_revoked(client, stack, api):
    # Given two invitations
    base = project(api)
    members = f"{base}/members"
    api.post(members, {"email": "gina@example.com", "role": "viewer"})
    api.post(members, {"user_id": "hank", "role": "viewer"})
    # When one's role changes and the other is revoked
    changed = api.patch(f"{members}/Gina@example.com", {"role": "editor"})
    revoked = api.delete(f"{members}/hank")
    # Then
    assert changed.status_code == 200 and changed.json["data"]["role"] == "editor", changed.json
    assert revoked.status_code == 200 and revoked.json["data"]["status"] == "invited"
    assert api.delete(f"{members}/hank").status_code == 404
    assert api.patch(f"{members}/nobody@example.com", {"role": "viewer"}).status_code == 404
    # And when both sign in, gina joins with the new role and hank joins nothing
    gina, hank = signed_in(client, stack, "gina"), signed_in(client, stack, "hank")
    assert gina.get(base).json["data"]["role"] == "editor"
    assert hank.get(base).status_code == 404
    assert listed(api, base) == [("alice", None, "owner", "active"), ("gina", None, "editor", "active")]


def test_invited_by_id_and_by_email_the_user_joins_once(client, stack, api):
    # Given the same person invited twice, by sub and by e-mail, with different roles
    base = project(api)
    api.post(f"{base}/members", {"user_id": "ivy", "role": "viewer"})
    api.post(f"{base}/members", {"email": "ivy@example.com", "role": "editor"})
    # When she signs in
    signed_in(client, stack, "ivy").get(PROJECTS)
    # Then she has one membership and no invitation is left behind
    entries = listed(api, base)
    assert [entry for entry in entries if entry[0] == "ivy"] in ([("ivy", None, "viewer", "active")],
                                                                 [("ivy", None, "editor", "active")])
    assert len(entries) == 2 and all(entry[3] == "active" for entry in entries)


def test_a_non_owner_cannot_invite_or_revoke(client, stack, api):
    # Given bob is an editor and erin is invited
    base = project(api)
    bob = signed_in(client, stack, "bob")
    bob.get(PROJECTS)
    api.post(f"{base}/members", {"user_id": "bob", "role": "editor"})
    api.post(f"{base}/members", {"email": "erin@example.com", "role": "viewer"})
    # When / Then
    assert bob.post(f"{base}/members", {"email": "zed@example.com", "role": "owner"}).status_code == 403
    assert bob.delete(f"{base}/members/erin@example.com").status_code == 403
    assert bob.patch(f"{base}/members/erin@example.com", {"role": "owner"}).status_code == 403
    assert len(listed(api, base)) == 3
