// A real OpenID provider (npm oidc-provider, OpenID Certified) for breakglass-idp's tests.
//
// Started by `breakglass_idp::testing::TestIdp` as `node provider.mjs` with its settings in the
// TEST_IDP_CONFIG environment variable (JSON, see `settings` below). It listens on a free
// loopback port and prints one line `{"issuer":"http://127.0.0.1:PORT","kid":"..."}` on stdout
// when ready. It exits when its stdin closes, so a test process that dies takes it along.
//
// Besides the provider's own endpoints it serves test-only control endpoints under /__test/ on
// the same loopback port: they exist only in this file, never in a real deployment.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const settings = {
  users: { alice: { email: 'alice@example.test', groups: ['approvers'] } },
  idTokenTtl: 300,
  accessTokenTtl: 300,
  refreshTokenTtl: 3600,
  deviceCodeTtl: 300,
  confidentialSecret: 'confidential-secret',
  brokerSecret: 'broker-secret',
  signingJwk: null,
  tokenExchange: true, // offer RFC 8693 token exchange to the broker client
  ...JSON.parse(process.env.TEST_IDP_CONFIG || '{}'),
};
const users = settings.users;

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `k-${crypto.randomBytes(6).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

// The first key signs; the others are only published (a rotation that keeps the old key).
let keys = [settings.signingJwk || newSigningKey()];

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

// Resource servers (RFC 8707) whose tokens the `broker` client obtains by the client-credentials
// grant, as Breakglass's OAuth connector does: one issues opaque tokens (introspectable,
// revocable), the other JWTs (checked by resource servers on their own, so they last until `exp`).
// A token lives as long as the request's `requested_lifetime` (seconds; a parameter this test
// provider accepts, as some real ones accept their own) asks, at most `maxTtl`, else `maxTtl`.
const RESOURCES = {
  'https://api.test/opaque': { format: 'opaque', maxTtl: 3600 },
  'https://api.test/jwt': { format: 'jwt', maxTtl: 3600 },
};

function resourceTtl(ctx, resource) {
  const asked = Number(ctx.oidc.body?.requested_lifetime);
  return Number.isInteger(asked) && asked > 0 ? Math.min(asked, resource.maxTtl) : resource.maxTtl;
}

async function resourceServerInfo(ctx, indicator) {
  const resource = RESOURCES[indicator];
  if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  return {
    scope: 'api:read api:write',
    audience: indicator,
    accessTokenTTL: resourceTtl(ctx, resource),
    accessTokenFormat: resource.format,
    ...(resource.format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  };
}

// RFC 8693 token exchange, which oidc-provider does not build in, as providers that offer it do
// for an OpenID Connect subject: the broker client exchanges a person's ID token (issued by this
// provider to one of its apps, signature, issuer and audience checked, not expired) for an access
// token for one resource that names that person as `sub`, its lifetime and format as for the
// client-credentials grant.
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE_PARAMS = ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'scope', 'requested_lifetime'];

async function tokenExchange(ctx) {
  const { provider, client, params } = ctx.oidc;
  if (!params.subject_token) throw new errors.InvalidRequest('subject_token is missing');
  if (params.subject_token_type !== ID_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`subject_token_type must be ${ID_TOKEN_TYPE}`);
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`only ${ACCESS_TOKEN_TYPE} is issued`);
  }
  if (!params.resource) throw new errors.InvalidTarget('a resource indicator is required');
  let subject;
  try {
    const { aud } = JSON.parse(Buffer.from(params.subject_token.split('.')[1], 'base64url'));
    const app = await provider.Client.find(Array.isArray(aud) ? aud[0] : aud);
    ({ payload: subject } = await provider.IdToken.validate(params.subject_token, app));
  } catch {
    throw new errors.InvalidGrant('subject_token is not an ID token this provider issued');
  }
  // IdToken.validate ignores expiry (it serves id_token_hint): an exchange must not.
  if (!(subject.exp > Math.floor(Date.now() / 1000))) throw new errors.InvalidGrant('subject_token has expired');
  if (!users[subject.sub]) throw new errors.InvalidGrant('subject_token names no known account');
  const resourceServer = new provider.ResourceServer(params.resource, await resourceServerInfo(ctx, params.resource));
  const allowed = new Set((client.scope || '').split(' '));
  const asked = (params.scope || '').split(' ').filter(Boolean);
  const refused = asked.filter((s) => !allowed.has(s) || !resourceServer.scopes.has(s));
  if (refused.length) throw new errors.InvalidScope(`scope not allowed: ${refused.join(' ')}`, refused.join(' '));
  const token = new provider.AccessToken({
    accountId: subject.sub, client, gty: 'token_exchange', scope: asked.join(' ') || undefined,
  });
  token.resourceServer = resourceServer;
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer',
    expires_in: token.expiration, ...(token.scope ? { scope: token.scope } : {}),
  };
}

const loopbackRedirect = ['http://127.0.0.1/callback']; // native clients: any port (RFC 8252 7.3)
const grantTypes = ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'];

function configuration() {
  return {
    jwks: { keys },
    cookies: { keys: ['breakglass-test-cookie-key'] },
    clients: [
      { // a public native app: PKCE (S256) is mandatory for auth method "none"
        client_id: 'native-app', application_type: 'native', token_endpoint_auth_method: 'none',
        redirect_uris: loopbackRedirect, grant_types: grantTypes, response_types: ['code'],
        require_auth_time: true,
      },
      { // a confidential native app (client_secret_basic)
        client_id: 'confidential-app', client_secret: settings.confidentialSecret,
        application_type: 'native', token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: loopbackRedirect, grant_types: grantTypes, response_types: ['code'],
        require_auth_time: true,
      },
      { // a service (Breakglass's broker): client credentials only
        client_id: 'broker', client_secret: settings.brokerSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials', ...(settings.tokenExchange ? [TOKEN_EXCHANGE] : [])],
        response_types: [], redirect_uris: [],
        scope: 'api:read api:write',
      },
    ],
    scopes: ['openid', 'offline_access', 'email', 'groups', 'api:read', 'api:write'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    conformIdTokenClaims: false, // scope-requested claims (groups) go in the ID token itself
    findAccount: async (ctx, sub) => users[sub] && ({
      accountId: sub,
      claims: async () => ({
        sub, email: users[sub].email, email_verified: true, groups: users[sub].groups,
      }),
    }),
    features: {
      devInteractions: { enabled: true }, // built-in login/consent forms (any password accepted)
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No resource asked for: as before, an opaque token for userinfo.
        defaultResource: async (ctx, client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: resourceServerInfo,
      },
    },
    ttl: {
      IdToken: settings.idTokenTtl,
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? settings.accessTokenTtl,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? settings.accessTokenTtl,
      RefreshToken: settings.refreshTokenTtl,
      DeviceCode: settings.deviceCodeTtl,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><title>error</title><pre>${JSON.stringify(out)}</pre>`;
    },
  };
}

// Tokens, grants and interactions live in oidc-provider's module-level memory adapter, so a new
// Provider instance (a key rotation) keeps every session and token of the old one.
function newProvider() {
  const p = new Provider(issuer, configuration());
  p.proxy = false;
  if (settings.tokenExchange) p.registerGrantType(TOKEN_EXCHANGE, tokenExchange, TOKEN_EXCHANGE_PARAMS);
  return { provider: p, callback: p.callback() };
}
let current = newProvider();

const counts = { jwks: 0, token: 0, device_authorization: 0 };

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function control(req, res, url) {
  const path = url.pathname;
  const groups = path.match(/^\/__test\/users\/([^/]+)\/groups$/);
  if (groups && req.method === 'PUT') {
    const id = decodeURIComponent(groups[1]);
    if (!users[id]) return json(res, 404, { error: `no user ${id}` });
    users[id].groups = await readBody(req);
    return json(res, 200, { user: id, groups: users[id].groups });
  }
  if (path === '/__test/rotate-key' && req.method === 'POST') {
    const { keepOld } = await readBody(req);
    const fresh = newSigningKey();
    keys = keepOld ? [fresh, ...keys] : [fresh];
    current = newProvider();
    return json(res, 200, { kid: fresh.kid, kids: keys.map((k) => k.kid) });
  }
  if (path === '/__test/counts' && req.method === 'GET') return json(res, 200, counts);
  // The private signing key, so a second instance can sign with it (a token from another issuer
  // that still verifies).
  if (path === '/__test/signing-key' && req.method === 'GET') return json(res, 200, keys[0]);
  return json(res, 404, { error: `no test endpoint ${req.method} ${path}` });
}

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/__test/')) {
    control(req, res, url).catch((e) => json(res, 500, { error: String(e) }));
    return;
  }
  if (url.pathname === '/jwks') counts.jwks += 1;
  if (url.pathname === '/token') counts.token += 1;
  if (url.pathname === '/device/auth') counts.device_authorization += 1;
  current.callback(req, res);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
console.log(JSON.stringify({ issuer, kid: keys[0].kid }));
