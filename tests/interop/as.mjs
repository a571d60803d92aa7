// The authorization server of the interop test: the real `oidc-provider` package, on loopback,
// with DPoP, the client_credentials grant, resource indicators and token introspection.
//
//   node tests/interop/as.mjs <jwt-audience> <opaque-audience> <ed25519-audience>
//
// Prints one JSON line on stdout when it listens: {"issuer": "http://127.0.0.1:PORT"}; all its
// other output goes to stderr. Runs until killed (the Rust test that spawns it kills it).
// DPoP proofs are accepted with oidc-provider's default algorithms: ES256, Ed25519 (RFC 9864)
// and EdDSA.
//
// Clients:
//   interop-client / interop-secret  client_credentials, client_secret_basic (the DPoP client)
//   gateway / gateway-secret         the gateway's own credentials, for introspection
// Resource servers (RFC 8707 `resource`):
//   <jwt-audience>      JWT access tokens (RFC 9068, ES256, carrying cnf.jkt)
//   <opaque-audience>   opaque access tokens, checked by introspection
//   <ed25519-audience>  JWT access tokens signed with alg "Ed25519" (RFC 9864)
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const [jwtAudience, opaqueAudience, ed25519Audience] = process.argv.slice(2);
if (!jwtAudience || !opaqueAudience || !ed25519Audience) {
  console.error('usage: node as.mjs <jwt-audience> <opaque-audience> <ed25519-audience>');
  process.exit(64);
}
// stdout carries the one line the test reads (and is closed after it): oidc-provider's notices
// (console.info) go to stderr with everything else.
console.info = console.error;
console.log = console.error;

function signingKey(type, options, alg) {
  const jwk = generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomUUID()}` };
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const resourceServers = {
    [jwtAudience]: {
      scope: 'read',
      audience: jwtAudience,
      accessTokenFormat: 'jwt',
      accessTokenTTL: 300,
      jwt: { sign: { alg: 'ES256' } },
    },
    [ed25519Audience]: {
      scope: 'read',
      audience: ed25519Audience,
      accessTokenFormat: 'jwt',
      accessTokenTTL: 300,
      jwt: { sign: { alg: 'Ed25519' } },
    },
    [opaqueAudience]: {
      scope: 'read',
      audience: opaqueAudience,
      accessTokenFormat: 'opaque',
      accessTokenTTL: 300,
    },
  };
  const provider = new Provider(issuer, {
    cookies: { keys: [randomUUID()] },
    clients: [
      {
        client_id: 'interop-client',
        client_secret: 'interop-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'gateway',
        client_secret: 'gateway-secret',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: {
      keys: [
        signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
        signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
        signingKey('ed25519', {}, 'Ed25519'),
      ],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        getResourceServerInfo: (ctx, resource) => {
          const info = resourceServers[resource];
          if (!info) throw new Error(`unknown resource ${resource}`);
          return info;
        },
      },
    },
  });
  // The test reads one line; everything else (oidc-provider's warnings) goes to stderr.
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
