from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stagectl.tlscerts import self_signed


def test_a_throwaway_certificate_is_self_signed_for_its_name_and_matches_its_key() -> None:
    made = self_signed("check.example", days=2)
    certificate = x509.load_pem_x509_certificate(made.certificate.encode())
    key = serialization.load_pem_private_key(made.private_key.encode(), password=None)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert certificate.public_key() == key.public_key()
    assert certificate.issuer == certificate.subject
    assert certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "check.example"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["check.example"]
    now = datetime.datetime.now(datetime.UTC)
    assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - now < datetime.timedelta(days=2, minutes=1)


def test_each_call_makes_a_new_key() -> None:
    assert self_signed("a").private_key != self_signed("a").private_key
