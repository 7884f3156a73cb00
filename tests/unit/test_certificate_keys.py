"""The subject key of a client certificate is its RFC 4514 string, as cryptography writes it, so
an operator registers what ``rfc4514_string()`` (or ``openssl x509 -nameopt RFC2253``) prints and
no value holding separators can spell another subject."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.pipeline.authn import certificate_keys

VALUES = ["svc", "billing,OU=Clients", "a+b", "#x", " lead", "trail ", 'q"\\x', "n\0ul", "<;>", " "]


def keys_of(subject: tuple[tuple[tuple[str, str], ...], ...]) -> list[str]:
    return [k for k in certificate_keys({"subject": subject}, "ab") if k.startswith("subject:")]


@pytest.mark.parametrize("cn", VALUES)
def test_subject_key_is_cryptographys_rfc4514_string(cn: str) -> None:
    # ssl.getpeercert()'s form: RDNs in certificate order, each a tuple of (name, value).
    subject = ((("organizationName", "Example"),), (("commonName", cn),))
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    assert keys_of(subject) == [f"subject:{name.rfc4514_string()}"]


def test_separators_in_a_value_never_equal_a_subject_with_more_attributes() -> None:
    crafted = ((("organizationName", "Example"),), (("commonName", "billing,O=Example"),))
    real = (
        (("organizationName", "Example"),),
        (("organizationName", "Example"),),
        (("commonName", "billing"),),
    )
    assert keys_of(crafted) != keys_of(real)
    multi = (
        (("organizationName", "Example"),),
        (("commonName", "a"), ("organizationalUnitName", "b")),
    )
    two = (
        (("organizationName", "Example"),),
        (("organizationalUnitName", "b"),),
        (("commonName", "a"),),
    )
    assert keys_of(multi) == ["subject:CN=a+OU=b,O=Example"] != keys_of(two)
