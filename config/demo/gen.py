#!/usr/bin/env python3
"""Regenerates the DEMO issuer key pair: issuer-key.jwk (private) and jwks.json (public).

DEMO ONLY: the private key is published in this repository; never trust it outside local testing.
Needs only python3 and the openssl command line. Run from anywhere: python3 config/demo/gen.py
"""
import base64, json, os, re, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
KID = "demo-1"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hex_block(text: str, label: str) -> bytes:
    # `openssl ec -text` prints "priv:" and "pub:" followed by colon-separated hex lines.
    m = re.search(label + r":\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    return bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))


pem = subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout"],
                     check=True, capture_output=True).stdout
text = subprocess.run(["openssl", "ec", "-text", "-noout"], input=pem,
                      check=True, capture_output=True).stdout.decode()
d = hex_block(text, "priv").rjust(32, b"\0")[-32:]
pub = hex_block(text, "pub")
assert pub[0] == 4 and len(pub) == 65, "expected an uncompressed P-256 point"
x, y = pub[1:33], pub[33:]
assert len(d) == len(x) == len(y) == 32

public = {"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y), "kid": KID, "use": "sig", "alg": "ES256"}
private = dict(public, d=b64url(d))
with open(os.path.join(HERE, "jwks.json"), "w") as f:
    json.dump({"keys": [public]}, f, indent=2)
    f.write("\n")
with open(os.path.join(HERE, "issuer-key.jwk"), "w") as f:
    json.dump(private, f, indent=2)
    f.write("\n")
print("wrote jwks.json and issuer-key.jwk (kid %s)" % KID)
