// A certified OpenID Connect provider (the npm package oidc-provider) for the suite's
// single sign-on tests: one client, the accounts given, its development sign-in pages
// (any password is accepted for a listed account). Configured by one JSON argument:
// {"port": 0, "client": {"client_id", "client_secret", "redirect_uris"},
//  "accounts": {"<login>": {claims}}}. Prints "listening <issuer>" once ready.
import Provider from "oidc-provider";

const config = JSON.parse(process.argv[2]);
const accounts = config.accounts;

const provider = new Provider(`http://127.0.0.1:${config.port}`, {
  clients: [{ ...config.client, grant_types: ["authorization_code"], response_types: ["code"] }],
  scopes: ["openid", "email", "profile", "crm"],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    crm: ["tenant", "roles"],
  },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});
provider.proxy = false;
const server = provider.listen(config.port, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
