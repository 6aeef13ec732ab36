// The accounts pages: the sign-in and sign-up forms, the account page, and Firefox's
// `account_updates` WebChannel. With Firefox's OAuth query (context=oauth_webchannel_v1,
// keys_jwk, state, code_challenge), signing in here connects that Firefox: fxa_status,
// can_link_account, an authorization code carrying the oldsync key encrypted to Firefox
// (keys_jwe), login (the session), then oauth_login, after which Firefox syncs.
//
// Written for syncstack; see onepw.js for the cryptography.
"use strict";

(() => {
  const body = document.body;
  const API = body.dataset.api;
  const SIGN_UP_OPEN = body.dataset.signup === "open";
  const ORIGIN = body.dataset.origin;
  const CHANNEL = "account_updates";
  const SESSION_KEY = "syncstack.accounts.session";
  const MIN_PASSWORD = 8;
  const params = new URLSearchParams(location.search);
  const firefoxFlow = params.get("context") === "oauth_webchannel_v1" &&
    ["client_id", "state", "code_challenge", "keys_jwk"].every(name => params.get(name));

  // --- what the page shows ------------------------------------------------------------

  const status = document.getElementById("status");
  const errorBox = document.getElementById("error");

  function show(view) {
    for (const section of document.querySelectorAll("main > section[data-view]")) {
      section.hidden = section.dataset.view !== view;
    }
  }

  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  function clearErrors() {
    errorBox.hidden = true;
    errorBox.textContent = "";
    for (const input of document.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-errormessage");
    }
  }

  function fail(text, field) {
    say("");
    errorBox.textContent = text;
    errorBox.hidden = false;
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-errormessage", "error");
      field.focus();
    } else {
      errorBox.focus();
    }
  }

  function busy(form, yes) {
    form.setAttribute("aria-busy", yes ? "true" : "false");
    for (const control of form.querySelectorAll("input, button")) {
      control.disabled = yes;
    }
  }

  // --- the server's API ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, answer) {
      super((answer && answer.message) || `HTTP ${status}`);
      this.status = status;
      this.errno = answer && answer.errno;
      this.email = answer && answer.email;
      this.retryAfter = answer && answer.retryAfter;
    }
  }

  async function api(method, path, { json, token } = {}) {
    const headers = { Accept: "application/json" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (token) {
      headers.Authorization = `Bearer ${token}`;
    }
    let response;
    try {
      response = await fetch(API + path, {
        method, headers, credentials: "omit", cache: "no-store",
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    } catch (e) {
      throw new ApiError(0, { message: "network" });
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (e) {
      answer = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, answer);
    }
    return answer;
  }

  // --- Firefox's WebChannel -----------------------------------------------------------

  class FirefoxError extends Error {}
  class NoFirefox extends Error {}
  const waiting = new Map();

  window.addEventListener("WebChannelMessageToContent", event => {
    let detail = event.detail;
    if (typeof detail === "string") {
      try {
        detail = JSON.parse(detail);
      } catch (e) {
        return;
      }
    }
    if (!detail || detail.id !== CHANNEL || !detail.message) {
      return;
    }
    const { messageId, data } = detail.message;
    const waiter = waiting.get(messageId);
    if (!waiter) {
      return;
    }
    waiting.delete(messageId);
    if (data && data.error) {
      waiter.reject(new FirefoxError(data.error.message || String(data.error)));
    } else {
      waiter.resolve(data || {});
    }
  });

  // Sends a command to Firefox (the detail must be a string) and waits for its answer.
  function toFirefox(command, data, timeoutMs) {
    const messageId = Onepw.toHex(crypto.getRandomValues(new Uint8Array(8)));
    return new Promise((resolve, reject) => {
      waiting.set(messageId, { resolve, reject });
      window.dispatchEvent(new CustomEvent("WebChannelMessageToChrome", {
        detail: JSON.stringify({ id: CHANNEL, message: { command, data, messageId } }),
      }));
      setTimeout(() => {
        if (waiting.delete(messageId)) {
          reject(new NoFirefox(command));
        }
      }, timeoutMs);
    });
  }

  // --- onepw ----------------------------------------------------------------------------

  // Signs in (or creates the account); with `keys`, also fetches the key bundle and
  // rebuilds kB. Retries once with the address as the account spells it (errno 120): the
  // password is stretched with it.
  async function signIn(mode, email, password, keys) {
    const path = (mode === "signup" ? "/account/create" : "/account/login") +
      (keys ? "?keys=true" : "");
    let stretched = await Onepw.stretch(email, password);
    let answer;
    try {
      answer = await api("POST", path, { json: { email, authPW: Onepw.toHex(stretched.authPW) } });
    } catch (e) {
      if (!(e instanceof ApiError && e.errno === 120 && e.email && e.email !== email)) {
        throw e;
      }
      email = e.email;
      stretched = await Onepw.stretch(email, password);
      answer = await api("POST", path, { json: { email, authPW: Onepw.toHex(stretched.authPW) } });
    }
    const session = await Onepw.tokenKeys(answer.sessionToken, "sessionToken");
    const account = {
      email, uid: answer.uid, sessionToken: answer.sessionToken, bearer: `fxs_${session.id}`,
    };
    if (keys) {
      const keyFetch = await Onepw.tokenKeys(answer.keyFetchToken, "keyFetchToken");
      const { bundle } = await api("GET", "/account/keys", { token: `fxk_${keyFetch.id}` });
      const { wrapKb } = await Onepw.openKeyBundle(keyFetch.bundleKey, bundle);
      account.kB = Onepw.xor(wrapKb, stretched.unwrapBKey);
    }
    return account;
  }

  // Hands the account to the Firefox that opened this page, as its OAuth flow expects.
  async function connectFirefox(account) {
    const clientId = params.get("client_id");
    const scope = params.get("scope") || `${Onepw.OLDSYNC} profile`;
    say("Connecting Firefox…");
    const link = await toFirefox("fxaccounts:can_link_account",
      { email: account.email, uid: account.uid }, 600000);
    if (!link.ok) {
      throw new FirefoxError("you chose not to connect this account to this Firefox profile.");
    }
    let keysJwe;
    if (scope.split(/\s+/).includes(Onepw.OLDSYNC)) {
      const keyData = await api("POST", "/account/scoped-key-data",
        { token: account.bearer, json: { client_id: clientId, scope: Onepw.OLDSYNC } });
      const meta = keyData[Onepw.OLDSYNC];
      const key = await Onepw.oldsyncKey(account.kB, meta.keyRotationTimestamp);
      keysJwe = await Onepw.keysJwe(params.get("keys_jwk"), { [Onepw.OLDSYNC]: key });
    }
    const code = await api("POST", "/oauth/authorization", {
      token: account.bearer,
      json: {
        client_id: clientId,
        state: params.get("state"),
        scope,
        response_type: "code",
        access_type: params.get("access_type") || "offline",
        code_challenge: params.get("code_challenge"),
        code_challenge_method: params.get("code_challenge_method") || "S256",
        keys_jwe: keysJwe,
      },
    });
    // Firefox stores the session first (oauth_login reads it), then completes its flow. The
    // code is asked for before either, so that a refusal leaves Firefox untouched.
    await toFirefox("fxaccounts:login", {
      email: account.email,
      uid: account.uid,
      sessionToken: account.sessionToken,
      verified: true,
      services: { sync: {} },
    }, 60000);
    await toFirefox("fxaccounts:oauth_login",
      { code: code.code, state: code.state, redirect: code.redirect, action: "signin" }, 120000);
  }

  // --- the forms ------------------------------------------------------------------------

  function explain(error, mode, email) {
    if (error instanceof ApiError) {
      switch (error.errno) {
        case 101:
          return [`An account for ${email} already exists. Sign in instead.`, "email"];
        case 102:
          return [`There is no account for ${email} on this server. ` + (SIGN_UP_OPEN
            ? "Check the address, or create an account."
            : "Check the address, or ask the server's operator to create the account."), "email"];
        case 103:
          return ["Incorrect password. Check it and try again.", "password"];
        case 114: {
          const minutes = Math.max(1, Math.ceil((error.retryAfter || 60) / 60));
          return [`Too many failed attempts. Try again in ${minutes} minute${minutes > 1 ? "s" : ""}.`];
        }
        case 202:
          if (mode === "signup") {
            return ["This server does not take new sign-ups. Ask its operator to create " +
              "an account for you (syncstack accounts add EMAIL)."];
          }
          break;
        default:
          break;
      }
      if (error.status === 0) {
        return ["Cannot reach the server. Check your connection and try again."];
      }
      if (error.errno === 107 && /email/i.test(error.message)) {
        return ["Enter a valid email address.", "email"];
      }
      return [`The server refused: ${error.message}` + (error.errno ? ` (errno ${error.errno}).` : ".")];
    }
    if (error instanceof NoFirefox) {
      return ["Firefox did not answer this page. Open the sign-in from Firefox itself, with " +
        `identity.fxaccounts.autoconfig.uri set to ${ORIGIN} in about:config.`];
    }
    if (error instanceof FirefoxError && /INVALID_STATE|FLOW_ABANDONED/.test(error.message)) {
      return ["Firefox no longer expects this sign-in (it was restarted, or signed in " +
        "another way). Choose Sign in in Firefox again."];
    }
    if (error instanceof FirefoxError) {
      return [`Firefox could not finish signing in: ${error.message}`];
    }
    return [`Something went wrong: ${error.message}`];
  }

  function check(form, mode) {
    const email = form.elements.email;
    const password = form.elements.password;
    if (!/^[^\s@]+@[^\s@]+$/.test(email.value.trim())) {
      return ["Enter your email address, like name@example.org.", email];
    }
    if (!password.value) {
      return ["Enter your password.", password];
    }
    if (mode === "signup") {
      if ([...password.value].length < MIN_PASSWORD) {
        return [`Use a password of at least ${MIN_PASSWORD} characters.`, password];
      }
      if (password.value !== form.elements.confirm.value) {
        return ["The two passwords are not the same.", form.elements.confirm];
      }
    }
    return null;
  }

  async function submit(event, mode) {
    event.preventDefault();
    const form = event.target;
    clearErrors();
    const problem = check(form, mode);
    if (problem) {
      fail(problem[0], problem[1]);
      return;
    }
    if (!Onepw.available()) {
      fail("This page needs a secure context (HTTPS, or http://localhost) for the browser's " +
        "cryptography. Ask the server's operator to serve it over HTTPS.");
      return;
    }
    const email = form.elements.email.value.trim();
    busy(form, true);
    say(mode === "signup" ? "Creating your account…" : "Signing in…");
    try {
      const account = await signIn(mode, email, form.elements.password.value, firefoxFlow);
      if (firefoxFlow) {
        await connectFirefox(account);
        document.getElementById("done-email").textContent = account.email;
        say("");
        show("done");
        document.getElementById("done-title").focus();
      } else {
        sessionStorage.setItem(SESSION_KEY, JSON.stringify({
          email: account.email, uid: account.uid, sessionToken: account.sessionToken,
        }));
        location.assign(new URL("settings", new URL(body.dataset.origin + "/")).pathname);
      }
    } catch (error) {
      busy(form, false); // first: a disabled field cannot take the focus
      const [text, fieldName] = explain(error, mode, email);
      fail(text, fieldName && form.elements[fieldName]);
    } finally {
      busy(form, false);
    }
  }

  // --- the account page ----------------------------------------------------------------

  async function bearerOf(account) {
    return `fxs_${(await Onepw.tokenKeys(account.sessionToken, "sessionToken")).id}`;
  }

  // The session this page signed in itself, or else the one Firefox holds (Firefox's
  // "Manage account" opens this page and hands it over through fxa_status).
  async function currentAccount() {
    try {
      const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (stored) {
        return { account: stored, through: "this web page" };
      }
    } catch (e) {
      sessionStorage.removeItem(SESSION_KEY);
    }
    try {
      say("Loading your account…");
      const state = await toFirefox("fxaccounts:fxa_status",
        { service: "sync", context: params.get("context") || "web", isPairing: false }, 4000);
      if (state.signedInUser && state.signedInUser.sessionToken) {
        return { account: state.signedInUser, through: "Firefox" };
      }
    } catch (e) {
      // Not in Firefox, or not its accounts origin: nobody is signed in here.
    } finally {
      say("");
    }
    return { account: null, through: null };
  }

  function describe(client) {
    const agent = client.userAgent || "";
    const browser = /Firefox\/(\d+)/.exec(agent);
    const system = ["Android", "iPhone", "iPad", "Windows", "Mac OS", "Linux"].find(os => agent.includes(os));
    const name = client.name || (browser ? `Firefox ${browser[1]}` : agent || "A session") +
      (system && !client.name ? ` on ${system.replace("Mac OS", "macOS")}` : "");
    const when = new Date(client.lastAccessTime).toLocaleString();
    return `${name}${client.deviceType ? ` (${client.deviceType})` : ""}, last active ${when}` +
      (client.isCurrentSession ? " (this session)" : "");
  }

  async function loadSettings() {
    const { account, through } = await currentAccount();
    if (!account) {
      document.getElementById("settings-signed-out").hidden = false;
      return;
    }
    document.getElementById("settings-email").textContent = account.email;
    document.getElementById("settings-through").textContent = through;
    const signout = document.getElementById("signout");
    signout.hidden = through !== "this web page";
    signout.addEventListener("click", async () => {
      try {
        await api("POST", "/session/destroy", { token: await bearerOf(account), json: {} });
      } catch (e) {
        // Already gone: forgetting it here is all that is left to do.
      }
      sessionStorage.removeItem(SESSION_KEY);
      location.reload();
    });
    document.getElementById("password-form").addEventListener("submit",
      e => changePassword(e, account, through));
    document.getElementById("delete-form").addEventListener("submit",
      e => deleteAccount(e, account, through));
    try {
      const clients = await api("GET", "/account/attached_clients",
        { token: await bearerOf(account) });
      document.getElementById("devices").replaceChildren(...clients.map(client => {
        const item = document.createElement("li");
        item.textContent = describe(client);
        return item;
      }));
      document.getElementById("settings-account").hidden = false;
    } catch (error) {
      if (error instanceof ApiError && error.errno === 110) {
        sessionStorage.removeItem(SESSION_KEY);
        document.getElementById("settings-signed-out").hidden = false;
        return;
      }
      fail(explain(error, "settings", account.email)[0]);
    }
  }

  // onepw's password change: prove the old password, rebuild kB, re-wrap it under the new
  // one. The server then revokes every session; this page's (or Firefox's) gets the new one.
  async function changePassword(event, account, through) {
    event.preventDefault();
    const form = event.target;
    const { old, password, confirm } = form.elements;
    clearErrors();
    if (!old.value) {
      return fail("Enter your current password.", old);
    }
    if ([...password.value].length < MIN_PASSWORD) {
      return fail(`Use a new password of at least ${MIN_PASSWORD} characters.`, password);
    }
    if (password.value !== confirm.value) {
      return fail("The two new passwords are not the same.", confirm);
    }
    busy(form, true);
    say("Changing your password…");
    try {
      const oldKeys = await Onepw.stretch(account.email, old.value);
      const start = await api("POST", "/password/change/start", {
        token: await bearerOf(account),
        json: { email: account.email, oldAuthPW: Onepw.toHex(oldKeys.authPW) },
      });
      const keyFetch = await Onepw.tokenKeys(start.keyFetchToken, "keyFetchToken");
      const { bundle } = await api("GET", "/account/keys", { token: `fxk_${keyFetch.id}` });
      const { wrapKb } = await Onepw.openKeyBundle(keyFetch.bundleKey, bundle);
      const kB = Onepw.xor(wrapKb, oldKeys.unwrapBKey);
      const newKeys = await Onepw.stretch(account.email, password.value);
      const change = await Onepw.tokenKeys(start.passwordChangeToken, "passwordChangeToken");
      const done = await api("POST", "/password/change/finish", {
        token: `fxpc_${change.id}`,
        json: {
          authPW: Onepw.toHex(newKeys.authPW),
          wrapKb: Onepw.toHex(Onepw.xor(kB, newKeys.unwrapBKey)),
        },
      });
      account.sessionToken = done.sessionToken;
      if (through === "Firefox") {
        await toFirefox("fxaccounts:change_password", {
          email: account.email, uid: done.uid, sessionToken: done.sessionToken, verified: true,
        }, 60000);
      } else {
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(account));
      }
      form.reset();
      say("Your password was changed. Your other devices will ask for the new one.");
    } catch (error) {
      busy(form, false); // first: a disabled field cannot take the focus
      const [text, field] = explain(error, "password", account.email);
      fail(text, field === "password" ? old : undefined);
    } finally {
      busy(form, false);
    }
  }

  async function deleteAccount(event, account, through) {
    event.preventDefault();
    const form = event.target;
    const { password } = form.elements;
    clearErrors();
    if (!password.value) {
      return fail("Enter your password to delete the account.", password);
    }
    busy(form, true);
    say("Deleting your account…");
    try {
      const keys = await Onepw.stretch(account.email, password.value);
      await api("POST", "/account/destroy",
        { json: { email: account.email, authPW: Onepw.toHex(keys.authPW) } });
      sessionStorage.removeItem(SESSION_KEY);
      if (through === "Firefox") {
        await toFirefox("fxaccounts:delete", { uid: account.uid }, 30000).catch(() => null);
      }
      document.getElementById("settings-account").hidden = true;
      say(`The account ${account.email} was deleted.`);
    } catch (error) {
      busy(form, false); // first: a disabled field cannot take the focus
      const [text, field] = explain(error, "delete", account.email);
      fail(text, field === "password" ? password : undefined);
    } finally {
      busy(form, false);
    }
  }

  // --- start ------------------------------------------------------------------------------

  for (const element of document.querySelectorAll("[data-when-signup]")) {
    element.hidden = element.dataset.whenSignup !== (SIGN_UP_OPEN ? "open" : "closed");
  }
  for (const element of document.querySelectorAll("[data-for-firefox]")) {
    element.hidden = !firefoxFlow;
  }
  for (const element of document.querySelectorAll(".origin")) {
    element.textContent = ORIGIN;
  }
  for (const link of document.querySelectorAll("a[data-keep-query]")) {
    link.search = location.search;
  }
  for (const id of ["signin-email", "signup-email"]) {
    document.getElementById(id).value = params.get("email") || "";
  }
  document.getElementById("signin-form").addEventListener("submit", e => submit(e, "signin"));
  document.getElementById("signup-form").addEventListener("submit", e => submit(e, "signup"));

  const view = body.dataset.view;
  show(view);
  if (view === "settings") {
    loadSettings();
  } else if (view === "signin" || view === "signup") {
    if (!Onepw.available()) {
      fail("This page needs a secure context (HTTPS, or http://localhost): browsers only " +
        "offer the cryptography it uses there.");
    } else if (firefoxFlow) {
      // Firefox answers at once; if it has not after a few seconds, say what to check, and
      // keep listening (a busy machine may just be slow).
      let warned = false;
      const slow = setTimeout(() => {
        warned = true;
        say("Firefox has not answered this page yet: if signing in stops there, check that " +
          `identity.fxaccounts.autoconfig.uri is ${ORIGIN} in about:config.`);
      }, 5000);
      toFirefox("fxaccounts:fxa_status",
        { service: params.get("service") || "sync", context: params.get("context"), isPairing: false },
        120000).then(state => {
        clearTimeout(slow);
        if (warned) {
          say("");
        }
        const email = state.signedInUser && state.signedInUser.email;
        if (email && !params.get("email")) {
          document.getElementById("signin-email").value = email;
        }
        body.dataset.firefox = "ready";
      }, () => {
        body.dataset.firefox = "silent";
      });
    }
  }
})();
