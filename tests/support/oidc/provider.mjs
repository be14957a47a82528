// A local OpenID Connect provider for the sign-in tests: panva's oidc-provider (OpenID Certified), installed by
// `make test` into .oidc/node_modules (OIDC_NODE_MODULES). Users, the client and the port come from the environment,
// so the pytest fixture (tests/support/oidc.py) decides everything. The login page checks the password; consent
// is granted by the provider itself for the one first-party client, so the browser flow is one form.
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.OIDC_NODE_MODULES;
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href);

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(process.env.OIDC_USERS); // {login: {password, email, name}}
const client = JSON.parse(process.env.OIDC_CLIENT); // {client_id, client_secret, redirect_uris, post_logout_redirect_uris}
const SCOPE = 'openid profile email';

const provider = new Provider(issuer, {
  clients: [{ ...client, grant_types: ['authorization_code'], response_types: ['code'] }],
  cookies: { keys: ['curator-tests-only-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // Streamlit reads the user from the ID token (Authlib parses it), not from the userinfo endpoint.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    // Sign-out asks once, on a page of our own (the default one loads a web font from outside the machine).
    rpInitiatedLogout: {
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html><head><title>Sign out</title></head><body><h1>Sign out?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button></body></html>`;
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email, email_verified: true, name: user.name, preferred_username: id };
      },
    };
  },
  // The test client is first party: grant its scopes without a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(SCOPE);
    await grant.save();
    return grant;
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginPage = (uid, error) => `<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Sign in to the test provider</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>Login <input name="login" autocomplete="off"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button></form></body></html>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

const interaction = /^\/interaction\/([\w-]+)$/;
const callback = provider.callback();

createServer(async (req, res) => {
  const match = interaction.exec(new URL(req.url, issuer).pathname);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name !== 'login') throw new Error(`prompt ${details.prompt.name} is not handled`);
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    if (req.method === 'GET') return res.end(loginPage(details.uid));
    const form = await readForm(req);
    const user = users[form.get('login')];
    if (!user || user.password !== form.get('password')) return res.end(loginPage(details.uid, 'Wrong login or password.'));
    return provider.interactionFinished(req, res, { login: { accountId: form.get('login') } }, { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 400;
    return res.end(`interaction failed: ${err.message}`);
  }
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
