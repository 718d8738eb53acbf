// The creator's sales page: revenue per currency and chain, withdrawable balances with a
// Withdraw button (the API builds the transaction, the wallet sends it), the payout address per
// chain and creator address with a form to change it (PUT /api/v1/sales/payout/ -> 202 typed
// data, signed in the wallet with eth_signTypedData_v4, sent back with the signature, relayed by
// StreamGate and followed until the registry pays out there), and the purchases of their videos;
// all from GET /api/v1/sales/.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse(document.getElementById("sales-config").textContent);
  const names = config.chainNames || {};
  const status = $("sales-status");
  // Currencies seen anywhere in the answer: "chain|address" -> {address, symbol, decimals}.
  const currencies = new Map();

  const el = SG.el;
  const chainName = (chain) => names[chain] || chain;
  const addressOf = (currency) => (currency && typeof currency === "object" ? currency.address : currency) || null;
  // A currency as an object, whether the API gave an object or an address (null: native).
  function currencyOf(chain, currency) {
    if (currency && typeof currency === "object" && currency.decimals !== undefined) return currency;
    const known = currencies.get(`${chain}|${(addressOf(currency) || "").toLowerCase()}`);
    if (known) return known;
    return addressOf(currency) ? { address: addressOf(currency), symbol: null, decimals: 0 } : { address: null, symbol: "ETH", decimals: 18 };
  }
  function remember(chain, currency) {
    if (currency && typeof currency === "object" && currency.decimals !== undefined) {
      currencies.set(`${chain}|${(currency.address || "").toLowerCase()}`, currency);
    }
  }
  const money = (chain, amount, currency) => SGMarket.price(amount || "0", currencyOf(chain, currency));
  const when = (value) => (value ? new Date(value).toLocaleString() : "");
  const KINDS = { purchase: "Purchase", rental: "Rental", membership: "Membership" };

  function totals(list) {
    const box = $("totals");
    box.innerHTML = "";
    if (!list.length) box.append(el("li", { class: "muted", text: "Nothing sold yet." }));
    for (const total of list) {
      box.append(el("li", { "data-testid": "total" },
        el("div", { class: "muted small", text: chainName(total.chain) }),
        el("div", { class: "amount", text: money(total.chain, total.net, total.currency) }),
        el("div", { class: "small", text: `${total.count} sale${Number(total.count) === 1 ? "" : "s"} · paid ${money(total.chain, total.gross, total.currency)} · fees ${money(total.chain, total.fees, total.currency)}` })));
    }
  }
  function balances(list) {
    const box = $("balances");
    box.innerHTML = "";
    if (!list.length) box.append(el("li", { class: "muted", text: "Nothing to withdraw." }));
    for (const balance of list) {
      // null: the chain did not answer just now.
      const known = balance.withdrawable !== null && balance.withdrawable !== undefined;
      const amount = known ? money(balance.chain, balance.withdrawable, balance.currency) : "Unknown right now";
      const button = el("button", { class: "btn", type: "button", text: "Withdraw" });
      button.setAttribute("aria-label", `Withdraw ${known ? amount : ""} on ${chainName(balance.chain)}`.replace("  ", " "));
      button.disabled = !known || BigInt(balance.withdrawable) === 0n;
      button.addEventListener("click", () => withdraw(balance, amount, button));
      const payout = balance.payout && balance.account && balance.payout.toLowerCase() !== balance.account.toLowerCase()
        ? `Paid to ${balance.payout}` : balance.payout ? "Paid to this same address" : "";
      box.append(el("li", { "data-testid": "balance" },
        el("div", { class: "muted small", text: chainName(balance.chain) }),
        el("div", { class: "amount", text: amount }),
        el("div", { class: "small mono", text: balance.account ? `Creator ${balance.account}` : "" }),
        el("div", { class: "small mono", text: payout }),
        el("div", { class: "row", style: "margin-top:.5rem" }, button)));
    }
  }
  // The payout address of each chain and creator address, with its change form; built once per
  // pair and updated in place afterwards, so a reload of the figures keeps what is being typed.
  const payouts = new Map(); // "chain|account" -> entry
  const payoutKey = (chain, account) => `${chain}|${String(account || "").toLowerCase()}`;
  let serial = 0;
  function payoutList(list) {
    const box = $("payouts");
    const seen = new Set();
    for (const balance of list) {
      if (!balance.account) continue;
      const key = payoutKey(balance.chain, balance.account);
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = payouts.get(key) || payoutEntry(balance);
      entry.payout = balance.payout || null;
      entry.current.textContent = !entry.payout ? "Unknown right now: the chain did not answer."
        : entry.payout.toLowerCase() === entry.account.toLowerCase() ? `${entry.payout} (your creator address itself)` : entry.payout;
      entry.current.dataset.payout = entry.payout || "";
    }
    for (const [key, entry] of payouts) {
      if (!seen.has(key) && !entry.busy) { entry.item.remove(); payouts.delete(key); }
    }
    box.querySelector("[data-role=empty]")?.remove();
    if (!payouts.size) {
      box.replaceChildren(el("li", { class: "muted", "data-role": "empty", text: "Register a video on a chain to choose where its proceeds go." }));
    }
  }
  function payoutEntry(balance) {
    const id = `payout-${++serial}`;
    const chain = chainName(balance.chain);
    const current = el("span", { class: "mono", "data-role": "current-payout" });
    const input = el("input", {
      type: "text", id, name: "payout", class: "mono", placeholder: "0x…", autocomplete: "off",
      spellcheck: "false", autocapitalize: "off", inputmode: "text", "aria-describedby": `${id}-status`,
    });
    const button = el("button", { class: "btn", type: "submit", text: "Sign and change" });
    const form = el("form", { class: "payout-form", novalidate: "" },
      el("label", { for: id, text: `New payout address on ${chain}` }),
      el("div", { class: "row" }, input, button));
    const region = el("div", { id: `${id}-status`, class: "payout-status", "data-testid": "payout-status", "aria-live": "polite" });
    const item = el("li", { class: "payout-item", "data-testid": "payout", "data-chain": balance.chain },
      el("h3", { text: chain }),
      el("div", { class: "small mono", text: `Creator ${balance.account}` }),
      el("p", { class: "payout-current" }, "Withdrawals go to ", current),
      form, region);
    const entry = { chain: balance.chain, account: balance.account, payout: null, item, current, input, button, region, busy: false };
    form.addEventListener("submit", (event) => { event.preventDefault(); changePayout(entry); });
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
    payouts.set(payoutKey(balance.chain, balance.account), entry);
    $("payouts").append(item);
    return entry;
  }
  function tell(entry, text, kind, state) {
    SG.notice(entry.region, text, kind);
    if (state) entry.region.dataset.state = state;
  }

  async function changePayout(entry) {
    if (entry.busy) return;
    const wanted = entry.input.value.trim();
    const chain = chainName(entry.chain);
    if (!/^0x[0-9a-fA-F]{40}$/.test(wanted)) {
      entry.input.setAttribute("aria-invalid", "true");
      tell(entry, "A payout address is 0x followed by 40 hexadecimal digits.", "error", "error");
      entry.input.focus();
      return;
    }
    if (entry.payout && wanted.toLowerCase() === entry.payout.toLowerCase()) {
      tell(entry, `Withdrawals on ${chain} already go to ${entry.payout}.`, "ok", "live");
      return;
    }
    entry.busy = true;
    entry.button.disabled = true;
    const body = { chain: entry.chain, payout: wanted, account: entry.account };
    try {
      tell(entry, "Preparing the change for your signature…", "", "signing");
      const asked = await SG.api("PUT", "/api/v1/sales/payout/", body);
      if (asked.status !== 202 || !asked.data || !asked.data.typed_data) {
        if (asked.data && asked.data.reason === "payout") entry.input.setAttribute("aria-invalid", "true");
        throw new SGMarket.MarketError(`Not changed: ${SG.message(asked.data, "the change could not be prepared.")}`);
      }
      const { typed_data: typedData, signer } = asked.data;
      tell(entry, "Connecting to your wallet…");
      const account = await SGMarket.connect();
      if (signer && account.toLowerCase() !== signer.toLowerCase()) {
        throw new SGMarket.MarketError(`Your wallet's account ${SGMarket.short(account)} is not your creator address ${signer}, which must sign this change. Switch to it in your wallet and try again.`);
      }
      await SGMarket.ensureChain(entry.chain, names); // wallets sign typed data for the chain they are on
      tell(entry, `Sign the new payout address in your wallet (no transaction, no gas)…`);
      const signature = await SGMarket.signTypedData(signer || account, typedData);
      const sent = await SG.api("PUT", "/api/v1/sales/payout/", { ...body, signature });
      if (sent.status !== 200 || !sent.data) throw new SGMarket.MarketError(`Not changed: ${SG.message(sent.data, "the signed change was refused.")}`);
      entry.input.value = "";
      await followPayout(entry, sent.data);
    } catch (error) {
      tell(entry, SGMarket.describe(error), "error", "error");
    } finally {
      entry.busy = false;
      entry.button.disabled = false;
    }
  }
  function relaying(entry, change) {
    const tx = change.tx_hash ? ` (transaction ${SGMarket.short(change.tx_hash)})` : "";
    tell(entry, `Relaying: StreamGate is sending your signed change on chain${tx}. Withdrawals go to ${change.payout} once it is confirmed.`, "", "relaying");
  }
  // Until the registry pays out to the signed address (GET /api/v1/sales/ says so) or the relay
  // failed (GET /api/v1/sales/payout/ gives its error).
  async function followPayout(entry, change) {
    const wanted = change.payout.toLowerCase();
    relaying(entry, change);
    const deadline = Date.now() + 10 * 60_000;
    while (Date.now() < deadline) {
      await SGMarket.sleep(1500);
      const changes = await SG.api("GET", "/api/v1/sales/payout/");
      const mine = changes.status === 200 && Array.isArray(changes.data)
        ? changes.data.find((c) => payoutKey(c.chain, c.account) === payoutKey(entry.chain, entry.account)) : null;
      if (mine && String(mine.payout).toLowerCase() === wanted && mine.status === "failed") {
        tell(entry, `Failed: the payout address was not changed. ${mine.error || ""}`.trim(), "error", "failed");
        return;
      }
      if (mine && String(mine.payout).toLowerCase() === wanted && mine.status !== "live") {
        relaying(entry, mine);
        continue;
      }
      if (await load() && entry.payout && entry.payout.toLowerCase() === wanted) {
        tell(entry, `Live: withdrawals on ${chainName(entry.chain)} now go to ${entry.payout}.`, "ok", "live");
        return;
      }
    }
    tell(entry, "Still relaying after 10 minutes: reload this page later to see whether the change went through.", "error", "error");
  }
  // A change signed before this page was opened: still on its way (followed), or failed.
  async function resume() {
    const changes = await SG.api("GET", "/api/v1/sales/payout/");
    if (changes.status !== 200 || !Array.isArray(changes.data)) return;
    for (const change of changes.data) {
      const entry = payouts.get(payoutKey(change.chain, change.account));
      if (!entry || entry.busy) continue;
      if (change.status === "relaying" || change.status === "submitted") {
        entry.busy = true;
        entry.button.disabled = true;
        followPayout(entry, change).finally(() => { entry.busy = false; entry.button.disabled = false; });
      } else if (change.status === "failed" && (!entry.payout || entry.payout.toLowerCase() !== String(change.payout).toLowerCase())) {
        tell(entry, `The last payout address you signed, ${change.payout}, did not go on chain: ${change.error || "unknown error"}. Sign it again.`, "error", "failed");
      }
    }
  }

  function purchases(list) {
    const body = $("purchases");
    body.innerHTML = "";
    $("no-purchases").hidden = list.length > 0;
    $("purchases-table").parentElement.hidden = !list.length;
    for (const sale of list) {
      const content = sale.content && typeof sale.content === "object" ? sale.content : { id: sale.content_id || sale.content, title: sale.title || sale.content_title };
      const title = content.title || content.id || "";
      const video = content.id ? el("a", { href: `/studio/${content.id}/`, text: title }) : document.createTextNode(title);
      const kind = KINDS[sale.kind] || sale.kind || "";
      const until = sale.expires_at ? ` until ${when(sale.expires_at)}` : "";
      body.append(el("tr", { "data-testid": "purchase" },
        el("td", { text: sale.purchased_at ? when(sale.purchased_at) : sale.block !== undefined ? `Block ${sale.block}` : "" }),
        el("td", { class: "wrap" }, video),
        el("td", { text: kind + until }),
        el("td", { text: money(sale.chain, sale.amount, sale.currency) }),
        el("td", { text: money(sale.chain, sale.fee || "0", sale.currency) }),
        el("td", { class: "mono", title: sale.buyer || "", text: SGMarket.short(sale.buyer || "") }),
        el("td", { class: "mono", title: sale.tx_hash || "", text: SGMarket.short(sale.tx_hash || "") })));
    }
  }

  async function load() {
    const answer = await SG.api("GET", "/api/v1/sales/");
    if (answer.status !== 200 || !answer.data) {
      SG.notice(status, SG.message(answer.data, "Your sales could not be loaded."), "error");
      return false;
    }
    const data = answer.data;
    for (const sale of data.purchases || []) remember(sale.chain, sale.currency);
    for (const item of [...(data.totals || []), ...(data.balances || [])]) remember(item.chain, item.currency);
    totals(data.totals || []);
    balances(data.balances || []);
    payoutList(data.balances || []);
    purchases(data.purchases || []);
    return true;
  }

  async function withdraw(balance, amount, button) {
    button.disabled = true;
    try {
      SG.notice(status, `Preparing the withdrawal of ${amount}…`);
      const built = await SG.api("POST", "/api/v1/sales/withdraw/", { chain: balance.chain, currency: addressOf(balance.currency) });
      const txs = SGMarket.transactionsOf(built);
      if (!txs) throw new SGMarket.MarketError(SG.message(built.data, "The withdrawal could not be prepared."));
      SG.notice(status, "Connecting to your wallet…");
      const account = await SGMarket.connect();
      await SGMarket.ensureChain(balance.chain, names);
      let hash = null;
      for (const tx of txs) {
        SG.notice(status, "Confirm the withdrawal in your wallet…");
        hash = await SGMarket.send(tx, account);
        SG.notice(status, `Withdrawal sent (transaction ${SGMarket.short(hash)}); waiting for it to be mined…`);
        await SGMarket.receipt(hash);
      }
      await load();
      const paid = payouts.get(payoutKey(balance.chain, balance.account));
      const where = paid && paid.payout ? `your payout address ${paid.payout}` : "your payout address";
      SG.notice(status, `Withdrawn: ${amount} went to ${where} (transaction ${SGMarket.short(hash)}).`, "ok");
    } catch (error) {
      SG.notice(status, SGMarket.describe(error), "error");
      button.disabled = false;
    }
  }

  load().then((loaded) => loaded && resume());
})();
