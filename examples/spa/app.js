// dojang SPA example: session cookie for the person, bearer token for the API.
//
// Flow: POST /api/v1/session (JSON, sets the HttpOnly cookie, returns the CSRF token)
//    → POST /api/v1/tokens {audience, scope} with X-CSRF-Token → access token
//    → GET/POST <api>/orders with Authorization: Bearer (cross-origin, CORS, no cookies)
//    → DELETE /api/v1/session → probe the API with the same token until it is refused.
// Every value is written with textContent: nothing from a server becomes markup.
"use strict";

(() => {
  const meta = document.querySelector('meta[name="dojang-spa"]');
  const config = {
    api: meta.dataset.api,
    audience: meta.dataset.audience,
    scope: meta.dataset.scope,
  };
  // How long to keep probing after logout before declaring the revocation lost.
  const PROBE_DEADLINE_MS = 5000;
  const PROBE_INTERVAL_MS = 5;

  const $ = (id) => document.getElementById(id);
  const state = { csrf: null, token: null };

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function message(text) {
    $("message").textContent = text || "";
  }

  async function json(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  function describe(body, status) {
    if (body && typeof body === "object" && "error" in body) {
      return `${body.error}: ${body.detail ?? ""}`;
    }
    return `HTTP ${status}`;
  }

  function signedIn(session) {
    state.csrf = session.csrf_token;
    $("user").textContent = session.user.username;
    $("sid").textContent = session.sid;
    show("login-section", false);
    show("session-section", true);
    message("");
  }

  function signedOut() {
    state.csrf = null;
    show("session-section", false);
    show("login-section", true);
  }

  // Same-origin calls to dojang: the cookie travels by default ("same-origin" credentials).
  async function dojang(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    return fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  }

  // Cross-origin calls to the API: the token is the only credential, never a cookie.
  async function api(method, path, token, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(config.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  }

  async function logIn(event) {
    event.preventDefault();
    const response = await dojang("POST", "/api/v1/session", {
      username: $("username").value,
      password: $("password").value,
    });
    const body = await json(response);
    $("password").value = "";
    if (response.status !== 201) {
      message(`Log-in refused: ${describe(body, response.status)}`);
      return;
    }
    signedIn(body);
  }

  async function getToken() {
    const response = await dojang("POST", "/api/v1/tokens", {
      audience: config.audience,
      scope: config.scope,
    });
    const body = await json(response);
    if (response.status !== 200) {
      message(`No token: ${describe(body, response.status)}`);
      return;
    }
    state.token = body.access_token;
    $("token").textContent = body.access_token;
    $("token-scope").textContent = body.scope || "(none)";
    $("token-expires").textContent = String(body.expires_in);
    $("call-api").disabled = false;
    show("token-section", true);
    message("");
  }

  async function callApi() {
    let response;
    try {
      // Place an order, then list them: both calls carry the same bearer token.
      await api("POST", "/orders", state.token, { item: "green tea", quantity: 1 });
      response = await api("GET", "/orders", state.token);
    } catch (error) {
      message(`API unreachable or CORS refused: ${error}`);
      return;
    }
    const body = await json(response);
    $("api-status").textContent = String(response.status);
    $("api-result").textContent = JSON.stringify(body, null, 2);
    show("api-section", true);
  }

  async function logOut() {
    const token = state.token;
    const response = await dojang("DELETE", "/api/v1/session");
    // The clock starts when dojang has answered: the session is gone from its store, and
    // the revocation event is on its way to every subscribed API.
    const loggedOutAt = performance.now();
    if (response.status !== 204) {
      const body = await json(response);
      message(`Log-out failed: ${describe(body, response.status)}`);
      return;
    }
    signedOut();
    state.token = null;
    $("call-api").disabled = true;
    if (token) await probe(token, loggedOutAt);
  }

  async function probe(token, since) {
    const out = $("revocation");
    show("revocation-section", true);
    out.dataset.state = "waiting";
    out.textContent = "Probing the API with the same token…";
    let attempts = 0;
    while (performance.now() - since < PROBE_DEADLINE_MS) {
      attempts += 1;
      let response;
      try {
        response = await api("GET", "/orders", token);
      } catch (error) {
        out.dataset.state = "error";
        out.textContent = `API unreachable: ${error}`;
        return;
      }
      if (response.status === 401) {
        const elapsed = performance.now() - since;
        const body = await json(response);
        out.dataset.state = "refused";
        out.dataset.elapsedMs = elapsed.toFixed(1);
        out.textContent =
          `The same token was refused ${elapsed.toFixed(1)} ms after log-out ` +
          `(attempt ${attempts}, ${describe(body, response.status)}).`;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
    }
    out.dataset.state = "accepted";
    out.textContent =
      `The token was still accepted ${PROBE_DEADLINE_MS} ms after log-out: ` +
      "is the API subscribed to dojang's revocation feed (DOJANG_REVOCATIONS)?";
  }

  async function start() {
    $("api-origin").textContent = config.api;
    $("audience").textContent = config.audience;
    $("login-form").addEventListener("submit", logIn);
    $("get-token").addEventListener("click", getToken);
    $("call-api").addEventListener("click", callApi);
    $("logout").addEventListener("click", logOut);
    const response = await dojang("GET", "/api/v1/session");
    if (response.status === 200) signedIn(await response.json());
    else signedOut();
    document.body.dataset.ready = "true";
  }

  start().catch((error) => message(`Start-up failed: ${error}`));
})();
