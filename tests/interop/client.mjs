// The client of the interop test: a real DPoP client library obtains a DPoP-bound access token
// by client_credentials from the authorization server and calls the API through the gateway.
//
//   node tests/interop/client.mjs <library> <alg> <issuer> <resource> <gateway-url>
//
// <library> is one of panva's packages, each used through its own API:
//   oauth4webapi   oauth.DPoP handle for the token request and protectedResourceRequest
//   openid-client  client.getDPoPHandle, clientCredentialsGrant and fetchProtectedResource
//   dpop           generateProof for both requests, sent with plain fetch
// <alg> is the proof key's algorithm as the library names it (ES256, Ed25519). <resource> is the
// RFC 8707 resource indicator (the gateway's audience); <gateway-url> the URL of a protected path
// behind the gateway. Prints one JSON object on stdout: the token type, the `alg` of a JWT
// access token (null when opaque), the `alg` of the proofs the library sent, and for each step the status and the WWW-Authenticate `error` the gateway
// answered: `ok` (a fresh proof), `replayed` (the same request again, byte for byte) and
// `foreign` (the token with a proof by another key).
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import * as dpop from 'dpop';

const [library, alg, issuerArg, resource, gatewayArg] = process.argv.slice(2);
if (!library || !alg || !issuerArg || !resource || !gatewayArg) {
  console.error('usage: node client.mjs <library> <alg> <issuer> <resource> <gateway-url>');
  process.exit(64);
}
const CLIENT_ID = 'interop-client';
const CLIENT_SECRET = 'interop-secret';
const issuer = new URL(issuerArg);
const api = new URL(gatewayArg);

// The last request sent, so that it can be replayed byte for byte.
let last;
const recordingFetch = (url, init) => {
  last = { url, init };
  return fetch(url, init);
};

/** A step's outcome: status, the challenge's `error`, and the response body. */
async function outcome(run) {
  let response;
  try {
    response = await run();
  } catch (e) {
    if (!(e instanceof oauth.WWWAuthenticateChallengeError)) throw e;
    response = e.response;
  }
  const challenge = response.headers.get('www-authenticate') ?? '';
  const error = /error="([^"]*)"/.exec(challenge)?.[1] ?? null;
  return { status: response.status, error, body: await response.text() };
}

/** The `alg` of the DPoP proof in the last request. */
function lastProofAlg() {
  const proof = new Headers(last.init.headers).get('dpop');
  const header = JSON.parse(Buffer.from(proof.split('.')[0], 'base64url').toString());
  return header.alg;
}

/** oauth4webapi: the lower-level library. */
async function withOauth4webapi() {
  const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http only
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...insecure }),
  );
  const c = { client_id: CLIENT_ID };
  const handle = oauth.DPoP(c, await oauth.generateKeyPair(alg));
  const grant = await oauth.clientCredentialsGrantRequest(
    as,
    c,
    oauth.ClientSecretBasic(CLIENT_SECRET),
    new URLSearchParams({ resource, scope: 'read' }),
    { DPoP: handle, ...insecure },
  );
  const token = await oauth.processClientCredentialsResponse(as, c, grant);
  const call = (h) => outcome(() => oauth.protectedResourceRequest(
    token.access_token, 'GET', api, new Headers(), null,
    { DPoP: h, [oauth.customFetch]: recordingFetch, ...insecure },
  ));
  return {
    token,
    call: () => call(handle),
    callWithAnotherKey: async () => call(oauth.DPoP(c, await oauth.generateKeyPair(alg))),
  };
}

/** openid-client: the higher-level library built on oauth4webapi. */
async function withOpenidClient() {
  const config = await client.discovery(
    issuer,
    CLIENT_ID,
    undefined,
    client.ClientSecretBasic(CLIENT_SECRET),
    { execute: [client.allowInsecureRequests] }, // loopback http only
  );
  config[client.customFetch] = recordingFetch;
  const handle = client.getDPoPHandle(config, await client.randomDPoPKeyPair(alg));
  const token = await client.clientCredentialsGrant(
    config,
    { resource, scope: 'read' },
    { DPoP: handle },
  );
  const call = (h) => outcome(() => client.fetchProtectedResource(
    config, token.access_token, api, 'GET', undefined, undefined, { DPoP: h },
  ));
  return {
    token,
    call: () => call(handle),
    callWithAnotherKey: async () => call(
      client.getDPoPHandle(config, await client.randomDPoPKeyPair(alg)),
    ),
  };
}

/** dpop: proofs only; the requests are plain fetch. */
async function withDpop() {
  const discovery = await fetch(new URL('/.well-known/openid-configuration', issuer));
  const { token_endpoint: tokenEndpoint } = await discovery.json();
  const keyPair = await dpop.generateKeyPair(alg);
  const grant = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await dpop.generateProof(keyPair, tokenEndpoint, 'POST'),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'read' }),
  });
  if (grant.status !== 200) throw new Error(`token endpoint: ${grant.status} ${await grant.text()}`);
  const token = await grant.json();
  const call = async (kp) => {
    const proof = await dpop.generateProof(kp, api.href, 'GET', undefined, token.access_token);
    return outcome(() => recordingFetch(api, {
      headers: { authorization: `DPoP ${token.access_token}`, dpop: proof },
    }));
  };
  return {
    token,
    call: () => call(keyPair),
    callWithAnotherKey: async () => call(await dpop.generateKeyPair(alg)),
  };
}

const libraries = {
  oauth4webapi: withOauth4webapi,
  'openid-client': withOpenidClient,
  dpop: withDpop,
};
if (!libraries[library]) {
  console.error(`unknown library ${library}: ${Object.keys(libraries).join(', ')}`);
  process.exit(64);
}
const session = await libraries[library]();
const ok = await session.call();
const proofAlg = lastProofAlg();
// The same request again, same proof (same jti): a replay.
const replayed = await outcome(() => fetch(last.url, last.init));
const foreign = await session.callWithAnotherKey();

/** The `alg` of a JWT access token's header; `null` for an opaque token. */
function tokenAlg(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  return JSON.parse(Buffer.from(parts[0], 'base64url').toString()).alg ?? null;
}

process.stdout.write(`${JSON.stringify({
  token_type: session.token.token_type,
  token_alg: tokenAlg(session.token.access_token),
  proof_alg: proofAlg,
  ok,
  replayed,
  foreign,
})}\n`);
