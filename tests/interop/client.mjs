// The client of the interop test: the real `oauth4webapi` package obtains DPoP-bound access
// tokens by client_credentials from the authorization server and calls the API through the
// gateway.
//
//   node tests/interop/client.mjs <issuer> <resource> <gateway-url>
//
// <resource> is the RFC 8707 resource indicator (the gateway's audience); <gateway-url> the URL
// of a protected path behind the gateway. Prints one JSON object on stdout: the token type, and
// for each step the status and the WWW-Authenticate `error` the gateway answered.
import * as oauth from 'oauth4webapi';

const [issuerArg, resource, gatewayArg] = process.argv.slice(2);
if (!issuerArg || !resource || !gatewayArg) {
  console.error('usage: node client.mjs <issuer> <resource> <gateway-url>');
  process.exit(64);
}
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http only
const issuer = new URL(issuerArg);
const api = new URL(gatewayArg);

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { ...insecure }),
);
const client = { client_id: 'interop-client' };
const clientAuth = oauth.ClientSecretBasic('interop-secret');
const key = await oauth.generateKeyPair('ES256');
const dpop = oauth.DPoP(client, key);

// The last request oauth4webapi sent, so that it can be replayed byte for byte.
let last;
const recordingFetch = (url, init) => {
  last = { url, init };
  return fetch(url, init);
};

const grant = await oauth.clientCredentialsGrantRequest(
  as,
  client,
  clientAuth,
  new URLSearchParams({ resource, scope: 'read' }),
  { DPoP: dpop, ...insecure },
);
const token = await oauth.processClientCredentialsResponse(as, client, grant);

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

const call = (handle) => outcome(() => oauth.protectedResourceRequest(
  token.access_token, 'GET', api, new Headers(), null,
  { DPoP: handle, [oauth.customFetch]: recordingFetch, ...insecure },
));

const ok = await call(dpop);
// The same request again, same proof (same jti): a replay.
const replayed = await outcome(() => fetch(last.url, last.init));
// The token with a proof from another key.
const otherKey = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
const foreign = await call(otherKey);

process.stdout.write(`${JSON.stringify({
  token_type: token.token_type,
  ok,
  replayed,
  foreign,
})}\n`);
