// The account page: linked wallets (link with a signed message, unlink), API tokens (create,
// copy once, revoke) and sign out everywhere, each a call to the JSON API, answered in words.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("account-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SIGN_IN_SOURCES = ["siwe", "solana"];
  const COPY_ICON = '<svg aria-hidden="true" focusable="false" width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/></svg>';
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  const el = SG.el;
  function date(iso) {
    return el("time", { datetime: iso, text: when.format(new Date(iso)) });
  }
  function short(address) {
    return address.length > 14 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address;
  }
  // The API's refusal in words; a session that ended elsewhere says so.
  function failure(answer, fallback) {
    const reason = answer.data && answer.data.reason;
    if (answer.status === 401 || reason === "not_authenticated") {
      return "You are signed out (perhaps by “Sign out everywhere” on another device). Reload the page and sign in again.";
    }
    if (answer.data && answer.data.name) return `Token name: ${[].concat(answer.data.name).join(" ")}`;
    if (answer.data && answer.data.reason === "no_scope") return "Tick at least one thing the token may do.";
    return SGWallet.refusal(answer.data, fallback);
  }
  async function copy(text, status, what) {
    try {
      await navigator.clipboard.writeText(text);
      SG.notice(status, `${what} copied.`, "ok");
    } catch (error) {
      SG.notice(status, `Your browser did not allow copying: select the ${what.toLowerCase()} and copy it by hand.`, "error");
    }
  }

  // A modal question (native <dialog>: focus stays inside, Escape cancels).
  function confirmAction(title, text, yes) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.showModal();
    });
  }

  // --- wallets -------------------------------------------------------------------------------
  function walletLabel(wallet) {
    if (wallet.namespace === "solana") return config.chainNames[wallet.chain] || "Solana";
    if (wallet.kind === "contract") return `Contract wallet on ${config.chainNames[wallet.chain] || wallet.chain}`;
    return "Ethereum (every EVM network)";
  }
  function walletItem(wallet, count) {
    const address = el("code", { class: "address", title: wallet.address, text: short(wallet.address) });
    const copyButton = el("button", { type: "button", class: "icon-btn", "aria-label": `Copy address ${wallet.address}`, title: "Copy the full address", html: COPY_ICON });
    copyButton.addEventListener("click", () => copy(wallet.address, $("wallets-status"), "Address"));
    const meta = el("div", { class: "muted small" }, "Linked ", date(wallet.created_at));
    if (wallet.last_sign_in_at) meta.append(" · Last signed in ", date(wallet.last_sign_in_at));
    const unlink = el("button", { type: "button", class: "btn danger small", "aria-label": `Unlink ${walletLabel(wallet)} wallet ${wallet.address}`, text: "Unlink" });
    unlink.addEventListener("click", () => walletUnlink(wallet, count));
    const title = el("div", { class: "item-title" }, el("strong", { text: walletLabel(wallet) }));
    if (wallet.current) title.append(" ", el("span", { class: "badge", text: "This session" }));
    return el("li", { class: "account-item", "data-address": wallet.address },
      el("div", { class: "item-main" }, title, el("div", { class: "address-row" }, address, copyButton), meta),
      unlink);
  }
  async function walletsLoad() {
    const answer = await SG.api("GET", "/api/v1/auth/wallets/");
    const list = $("wallet-list");
    list.innerHTML = "";
    if (answer.status !== 200) { SG.notice($("wallets-status"), failure(answer, "Could not load your wallets."), "error"); return; }
    for (const wallet of answer.data) list.append(walletItem(wallet, answer.data.length));
    if (!answer.data.length) list.append(el("li", { class: "muted empty", text: config.hasPassword ? "No wallet linked: you sign in with your password." : "No wallet linked." }));
  }
  async function walletUnlink(wallet, count) {
    let text = `${walletLabel(wallet)} ${wallet.address} will no longer sign you in, and the tokens its sign-ins issued stop working.`;
    if (wallet.current) text += " You signed in here with this wallet, so this browser is signed out too.";
    if (!(await confirmAction("Unlink this wallet?", text, "Unlink wallet"))) return;
    const answer = await SG.api("DELETE", `/api/v1/auth/wallets/${wallet.id}/`);
    if (answer.status === 204) {
      if (wallet.current) { location.assign("/signin/?next=/account/"); return; }
      SG.notice($("wallets-status"), `Unlinked ${short(wallet.address)}.`, "ok");
      walletsLoad();
      return;
    }
    const reason = answer.data && answer.data.reason;
    const message = reason === "last_wallet"
      ? "This wallet is your only way to sign in, so it cannot be unlinked. Link another wallet first."
      : failure(answer, "Could not unlink the wallet.");
    SG.notice($("wallets-status"), message, "error");
  }
  async function walletLink(kind) {
    const status = $("link-status");
    const show = (text, tone) => SG.notice(status, text, tone);
    const statement = "Link this wallet to my StreamGate account.";
    let body;
    try {
      if (kind === "eip155") {
        const signed = await SGWallet.signEthereum({ evmChainIds: config.evmChainIds, statement, show });
        body = { namespace: "eip155", message: signed.message, signature: signed.signature };
      } else {
        const signed = await SGWallet.signSolana({ solanaChains: config.solanaChains, statement, show });
        body = { namespace: "solana", ...signed };
      }
    } catch (error) {
      show(SGWallet.describe(error), "error");
      return;
    }
    const answer = await SG.api("POST", "/api/v1/auth/wallets/", body);
    if (answer.status === 201) show(`Linked ${short(answer.data.address)}: it now signs you in to this account.`, "ok");
    else if (answer.status === 200) show(`${short(answer.data.address)} was already linked to your account.`, "ok");
    else { show(failure(answer, "Could not link the wallet."), "error"); return; }
    walletsLoad();
  }

  // --- API tokens -----------------------------------------------------------------------------
  function live(token) {
    return !token.revoked_at && (!token.expires_at || new Date(token.expires_at) > new Date());
  }
  function tokenItem(token) {
    const meta = el("div", { class: "muted small" }, "Created ", date(token.created_at), " · ");
    if (token.last_used_at) meta.append("Last used ", date(token.last_used_at));
    else meta.append("Never used");
    meta.append(" · ");
    if (token.expires_at) meta.append("Expires ", date(token.expires_at));
    else meta.append("Never expires");
    if (token.scopes && token.scopes.length) meta.append(` · Scopes: ${token.scopes.join(", ")}`);
    const revoke = el("button", { type: "button", class: "btn danger small", "aria-label": `Revoke token ${token.name}`, text: "Revoke" });
    revoke.addEventListener("click", () => tokenRevoke(token));
    const title = el("div", { class: "item-title" }, el("strong", { text: token.name || "(no name)" }), " ", el("code", { class: "prefix", text: `${token.prefix}…` }));
    return el("li", { class: "account-item", "data-token": token.name }, el("div", { class: "item-main" }, title, meta), revoke);
  }
  async function tokensLoad() {
    const answer = await SG.api("GET", "/api/v1/auth/tokens/");
    const list = $("token-list");
    list.innerHTML = "";
    if (answer.status !== 200) { SG.notice($("token-status"), failure(answer, "Could not load your tokens."), "error"); return; }
    const current = answer.data.filter(live);
    const named = current.filter((token) => !SIGN_IN_SOURCES.includes(token.source));
    for (const token of named) list.append(tokenItem(token));
    if (!named.length) list.append(el("li", { class: "muted empty", text: "No API tokens yet." }));
    const signIns = current.length - named.length;
    $("signin-tokens").textContent = signIns
      ? `${signIns} token${signIns === 1 ? "" : "s"} from wallet sign-ins ${signIns === 1 ? "is" : "are"} active; “Sign out everywhere” ends them.`
      : "";
  }
  async function tokenCreate(event) {
    event.preventDefault();
    const status = $("token-status");
    const days = $("token-expiry").value;
    const answer = await SG.api("POST", "/api/v1/auth/tokens/", {
      name: $("token-name").value.trim(),
      expires_in_days: days ? Number(days) : null,
      scopes: [...document.querySelectorAll('#token-form input[name="scopes"]:checked')].map((box) => box.value),
    });
    if (answer.status !== 201) { $("token-created").hidden = true; SG.notice(status, failure(answer, "Could not create the token."), "error"); return; }
    SG.notice(status, "");
    $("token-name").value = "";
    $("token-secret").textContent = answer.data.token;
    $("token-created").hidden = false;
    $("token-created").focus();
    tokensLoad();
  }
  async function tokenRevoke(token) {
    const text = `Scripts and apps using “${token.name}” (${token.prefix}…) will be refused from their next request. This cannot be undone.`;
    if (!(await confirmAction("Revoke this token?", text, "Revoke token"))) return;
    const answer = await SG.api("DELETE", `/api/v1/auth/tokens/${token.id}/`);
    if (answer.status === 204) SG.notice($("token-status"), `Revoked “${token.name}”.`, "ok");
    else SG.notice($("token-status"), failure(answer, "Could not revoke the token."), "error");
    tokensLoad();
  }

  // --- sign out everywhere --------------------------------------------------------------------
  async function signOutEverywhere() {
    const revoke = $("revoke-tokens").checked;
    const text = revoke
      ? "Every device and browser signed in to this account is signed out, this one included, and every API token stops working."
      : "Every device and browser signed in to this account is signed out, this one included. Your API tokens keep working.";
    if (!(await confirmAction("Sign out everywhere?", text, "Sign out everywhere"))) return;
    const answer = await SG.api("POST", "/api/v1/auth/logout/everywhere/", { revoke_api_tokens: revoke });
    if (answer.status !== 200) { SG.notice($("everywhere-status"), failure(answer, "Could not sign out everywhere."), "error"); return; }
    SG.notice($("everywhere-status"), "Signed out everywhere.", "ok");
    location.assign("/signin/?next=/account/");
  }

  $("link-siwe").addEventListener("click", () => walletLink("eip155"));
  $("link-siws").addEventListener("click", () => walletLink("solana"));
  $("token-form").addEventListener("submit", tokenCreate);
  $("token-copy").addEventListener("click", () => copy($("token-secret").textContent, $("token-status"), "Token"));
  $("signout-everywhere").addEventListener("click", signOutEverywhere);
  walletsLoad();
  tokensLoad();
})();
