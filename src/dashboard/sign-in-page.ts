/**
 * What a browser gets instead of a page when it comes without credentials, or with ones the
 * service refuses: an HTML page (not the API's JSON error) that says how to get in. Pages take
 * the token in `?token=` because a navigation cannot set headers; the page's scripts then keep it
 * in this browser and send it as `Authorization: Bearer` on their own requests.
 */
import { SIGN_IN_SCRIPT } from "./client.js";
import { esc, layout, normalizeBase } from "./html.js";

export interface SignInPageOptions {
  /** Path the service is mounted under. @default "" */
  basePath?: string;
  /** The path the browser asked for (the form brings it back there with the token). */
  path: string;
  /**
   * The service's address as the browser reached it, for the examples.
   * @example "http://127.0.0.1:8080"
   * @default "" (paths only)
   */
  origin?: string;
  /** The query it asked with, without `token`: kept through the form. */
  query?: Record<string, string>;
  /** 401: no or bad credentials; 403: verified, but not allowed. */
  status: 401 | 403;
  /** The service's reason, as the API would give it. */
  message: string;
  /** Whether the request carried a token (then it was refused, not missing). */
  hadToken: boolean;
}

export function renderSignInPage(o: SignInPageOptions): string {
  const base = normalizeBase(o.basePath);
  const at = `${o.origin ?? ""}${base}`;
  const hidden = Object.entries(o.query ?? {})
    .filter(([k]) => k !== "token")
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join("");
  const lead =
    o.status === 403
      ? `<p class="warn">The service verified who you are, but you may not use it: ${esc(o.message)}.</p><p>Ask for your account to be added to <code>SHARDRUN_ALLOWED_SERVICE_ACCOUNTS</code>, or sign in as another one.</p>`
      : o.hadToken
        ? `<p class="warn">The service refused the token this page was opened with: ${esc(o.message)}.</p>`
        : `<p>This dashboard needs the service's credentials. You came without any.</p>`;
  const body = `<section class="card sign-in" aria-labelledby="sign-in-h">
<h1 id="sign-in-h">Sign in to the shardrun dashboard</h1>
${lead}
<h2>With the service's token</h2>
<p>On a service started with <code>SHARDRUN_API_TOKEN</code> (<code>shardrun serve --local</code>), open the dashboard once with the token in the address:</p>
<pre class="example">${esc(`${at}/?token=<SHARDRUN_API_TOKEN>`)}</pre>
<p>This browser then keeps the token (in its local storage) and sends it with every request the pages make, so later visits need only the plain address. Or paste it here:</p>
<form class="token-form" method="get" action="${esc(o.path)}">
<label>Token <input type="password" name="token" required minlength="16" autocomplete="current-password" spellcheck="false"></label>${hidden}
<button type="submit" class="primary">Open</button>
</form>
<h2>From scripts</h2>
<p>The API takes the same token as a header, never in the address:</p>
<pre class="example">curl -H "Authorization: Bearer $SHARDRUN_API_TOKEN" ${esc(`${at}/v1/runs`)}</pre>
<h2>On Cloud Run</h2>
<p>A service deployed with <code>SHARDRUN_OIDC_AUDIENCE</code> takes Google-signed ID tokens instead. Open the dashboard through a proxy that adds yours, <code>gcloud run services proxy &lt;service&gt; --region &lt;region&gt;</code>, then <code>http://localhost:8080/</code>; scripts send <code>Authorization: Bearer $(gcloud auth print-identity-token)</code>.</p>
</section>`;
  return layout({ title: "Sign in · shardrun", basePath: base, body, script: SIGN_IN_SCRIPT });
}
