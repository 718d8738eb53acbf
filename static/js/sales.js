// The creator's sales page: revenue per currency and chain, withdrawable balances with a
// Withdraw button (the API builds the transaction, the wallet sends it), and the purchases of
// their videos; all from GET /api/v1/sales/.
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
      SG.notice(status, `Withdrawn: ${amount} went to your payout address (transaction ${SGMarket.short(hash)}).`, "ok");
    } catch (error) {
      SG.notice(status, SGMarket.describe(error), "error");
      button.disabled = false;
    }
  }

  load();
})();
