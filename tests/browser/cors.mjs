// A browser SPA calling the gateway cross-origin: Debian's chromium, headless, driven by
// playwright-core. Run by tests/e2e/cors.rs: node cors.mjs <page origin> <gateway API URL>.
// The page (served from <page origin>) makes an ECDSA P-256 key with WebCrypto, computes its
// RFC 7638 thumbprint, gets an access token bound to it from its own origin (POST /token),
// signs a DPoP proof (RFC 9449) and fetches the API through the gateway, whose CORS preflight
// answer lets the browser send Authorization and DPoP; then once more with a proof for another
// method, whose 401 challenge the page must be able to read. Prints one JSON line; exits 1
// with the reason on the first failed expectation.
import { chromium } from "playwright-core";

const [pageOrigin, api] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

class Failed extends Error {}
function fail(msg) {
  throw new Failed(msg);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for chromium's sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const problems = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  const resp = await page.goto(pageOrigin + "/");
  if (!resp || resp.status() !== 200) fail("GET the page: " + (resp && resp.status()));

  const result = await page.evaluate(async (api) => {
    const enc = new TextEncoder();
    const b64url = (bytes) =>
      btoa(String.fromCharCode(...new Uint8Array(bytes)))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "");
    const b64json = (v) => b64url(enc.encode(JSON.stringify(v)));
    const sha256 = async (text) => crypto.subtle.digest("SHA-256", enc.encode(text));

    const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ]);
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const jwk = { kty, crv, x, y };
    // RFC 7638: the required members in lexicographic order, no whitespace.
    const jkt = b64url(await sha256(JSON.stringify({ crv, kty, x, y })));

    const minted = await fetch("/token", { method: "POST", body: jkt });
    if (!minted.ok) throw new Error("token endpoint: " + minted.status);
    const token = await minted.text();

    const proof = async (htm) => {
      const header = { typ: "dpop+jwt", alg: "ES256", jwk };
      const claims = {
        jti: crypto.randomUUID(),
        htm,
        htu: api,
        iat: Math.floor(Date.now() / 1000),
        ath: b64url(await sha256(token)),
      };
      const input = b64json(header) + "." + b64json(claims);
      // WebCrypto's ECDSA signature is r || s, the JWS form (RFC 7518 §3.4).
      const sig = await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        keys.privateKey,
        enc.encode(input),
      );
      return input + "." + b64url(sig);
    };
    const call = async (htm) => {
      const r = await fetch(api, {
        headers: { Authorization: "DPoP " + token, DPoP: await proof(htm) },
      });
      return { status: r.status, www: r.headers.get("WWW-Authenticate"), body: await r.text() };
    };
    const first = await call("GET");
    const second = await call("POST");
    return { jkt, first, second };
  }, api);

  if (result.first.status !== 200) fail("the call with the page's proof: " + JSON.stringify(result.first));
  if (result.second.status !== 401) fail("the call with a wrong proof: " + JSON.stringify(result.second));
  if (!result.second.www) fail("WWW-Authenticate is not readable by the page (not exposed)");
  if (problems.length) fail(problems.join("; "));
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (e) {
  console.error("cors browser test: " + (e instanceof Failed ? e.message : (e && e.stack) || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
