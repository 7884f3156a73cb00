"""Client-certificate registrations held against crafted certificates (the issue 22 review).

A subject registration is a string; the certificate's subject must map to it one way only, or a
certificate whose name *contains* the separators spells another certificate's registration.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import GatewayFactory
from tests.e2e.test_client_certificates import Setup, get, register, start
from tests.support.harness import Upstream, eventually


async def test_a_subject_with_separators_in_a_value_cannot_spell_another_registration(
    make_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    s = Setup(tmp_path)
    gw = await start(make_gateway, upstream, s)
    # The registration of a service whose certificate has two OUs, in another workspace.
    await register(gw, "other", "billing", "subject:CN=billing,OU=Clients,OU=Team,O=Example")
    # The same CA issues team "Team" a certificate whose common name carries the separators.
    crafted = s.clients.client("billing,OU=Clients", unit="Team", organization="Example")
    status, err = await get(gw, "/api/items", s.context(crafted))
    assert status == 401, "a crafted common name authenticated as another registration"
    assert "not a registered credential" in err["message"]
    assert not upstream.seen
    # Registered in its escaped RFC 4514 form (what `openssl x509 -nameopt RFC2253` and
    # cryptography's rfc4514_string() print), that certificate is its own credential: at once,
    # although it was refused a moment ago (that refusal is not remembered past the change).
    own = await register(gw, "acme", "own", r"subject:CN=billing\,OU=Clients,OU=Team,O=Example")

    async def accepted() -> bool:
        return (await get(gw, "/api/items", s.context(crafted)))[0] == 200

    await eventually(accepted, within=1.0)
    assert upstream.last.header("X-Gateway-Token-Id") == own.id
