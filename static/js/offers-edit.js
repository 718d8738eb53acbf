// The studio editor's offers: rows of kind, currency, amount (typed in whole units, sent in the
// currency's smallest unit as a decimal string) and period; "Sign and publish" asks the API for
// the EIP-712 typed data (PUT …/offers/ -> 202), has the creator's linked wallet sign it
// (eth_signTypedData_v4), sends it back with the signature and follows the relay until the
// offers are live on chain, or failed with the reason.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  if (!$("offer-rows")) return; // no chain configured
  const config = JSON.parse(document.getElementById("edit-config").textContent);
  const url = `/api/v1/contents/${config.id}/`;
  const names = config.chainNames || {};
  const status = $("offers-status");
  const rows = $("offer-rows");
  const DAY = 86400;
  // The native coin of the chains we know (all EVM natives have 18 decimals).
  const NATIVE_SYMBOL = { "eip155:137": "POL", "eip155:80002": "POL" };
  const nativeSymbol = (chain) => NATIVE_SYMBOL[chain] || "ETH";
  // Tokens seen in this content's offers: address (lower case) -> {symbol, decimals}.
  const tokens = new Map();
  let live = [];

  for (const option of $("offers-chain").options) option.textContent = names[option.value] || option.value;

  const el = SG.el;
  let serial = 0;
  function labelled(labelText, control, extra) {
    const id = `offer-${++serial}`;
    control.id = id;
    const wrap = el("div", extra || {}, el("label", { for: id, text: labelText }), control);
    return wrap;
  }
  function option(value, text) {
    return el("option", { value, text });
  }

  // One offer's row; ``offer`` is an API offer (amount in the smallest unit) or undefined.
  function row(offer) {
    const item = el("li", { class: "offer-row", "data-testid": "offer-row" });
    const kind = el("select", { name: "kind" },
      option("purchase", "Purchase (for ever)"), option("rental", "Rental"), option("membership", "Membership (all your videos)"));
    const currency = el("select", { name: "currency" }, option("native", nativeSymbol(chain())), option("token", "An ERC-20 token"));
    const token = el("input", { type: "text", name: "token", class: "mono", placeholder: "0x…", spellcheck: "false", autocapitalize: "off", autocomplete: "off" });
    const decimals = el("input", { type: "number", name: "decimals", min: "0", max: "36", step: "1", inputmode: "numeric" });
    const amount = el("input", { type: "text", name: "amount", inputmode: "decimal", autocomplete: "off", placeholder: "0.01" });
    const periodValue = el("input", { type: "number", name: "period", min: "1", step: "1", inputmode: "numeric" });
    const periodUnit = el("select", { name: "unit" }, option("3600", "hours"), option(String(DAY), "days"));
    const hint = el("span", { class: "hint", "data-role": "token-hint" });
    const remove = el("button", { type: "button", class: "btn danger small", text: "Remove" });
    const tokenField = labelled("Token address", token, { class: "offer-token" });
    tokenField.append(hint);
    const decimalsField = labelled("Token decimals", decimals, { class: "offer-decimals" });
    const periodField = labelled("Period", periodValue);
    const unitField = labelled("Unit", periodUnit);
    item.append(
      labelled("Kind", kind, { class: "offer-kind" }), labelled("Currency", currency), tokenField, decimalsField,
      labelled("Amount", amount), periodField, unitField, el("div", { class: "offer-remove" }, remove),
    );
    remove.setAttribute("aria-label", "Remove this offer");
    remove.addEventListener("click", () => { const next = item.nextElementSibling || item.previousElementSibling; item.remove(); refresh(); (next ? next.querySelector("select") : $("add-offer")).focus(); });

    function sync() {
      const timed = kind.value !== "purchase";
      periodField.hidden = unitField.hidden = !timed;
      const isToken = currency.value === "token";
      tokenField.hidden = decimalsField.hidden = !isToken;
      currency.options[0].textContent = nativeSymbol(chain());
    }
    kind.addEventListener("change", sync);
    currency.addEventListener("change", sync);
    token.addEventListener("change", () => describeToken(token, decimals, hint));

    if (offer) {
      kind.value = offer.kind;
      const address = offer.currency && offer.currency.address;
      currency.value = address ? "token" : "native";
      if (address) {
        token.value = address;
        decimals.value = String(offer.currency.decimals);
        hint.textContent = offer.currency.symbol ? `${offer.currency.symbol}, ${offer.currency.decimals} decimals` : "";
      }
      amount.value = SGMarket.formatAmount(offer.amount, offer.currency ? offer.currency.decimals : 18);
      const seconds = Number(offer.period_seconds) || 0;
      if (seconds) {
        const inDays = seconds % DAY === 0 && seconds >= 3 * DAY;
        periodUnit.value = inDays ? String(DAY) : "3600";
        periodValue.value = String(seconds / (inDays ? DAY : 3600));
      }
    } else {
      periodValue.value = "48";
    }
    sync();
    return item;
  }

  // Symbol and decimals of a token typed in: from this content's offers, else asked of the
  // wallet's node (eth_call, without prompting) when the wallet is already on the chain.
  async function describeToken(input, decimals, hint) {
    const address = input.value.trim();
    hint.textContent = "";
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) {
      if (address) hint.textContent = "A token address is 0x and 40 hexadecimal digits.";
      return;
    }
    const known = tokens.get(address.toLowerCase());
    if (known) {
      decimals.value = String(known.decimals);
      hint.textContent = known.symbol ? `${known.symbol}, ${known.decimals} decimals` : "";
      return;
    }
    try {
      const wallet = window.ethereum;
      if (!wallet) throw new Error("no wallet");
      const onChain = await wallet.request({ method: "eth_chainId" });
      if (BigInt(onChain) !== BigInt(SGMarket.chainHex(chain()))) throw new Error("other chain");
      const call = (data) => wallet.request({ method: "eth_call", params: [{ to: address, data }, "latest"] });
      const places = Number(BigInt(await call("0x313ce567"))); // decimals()
      const symbol = abiString(await call("0x95d89b41")); // symbol()
      decimals.value = String(places);
      tokens.set(address.toLowerCase(), { symbol, decimals: places });
      hint.textContent = symbol ? `${symbol}, ${places} decimals` : `${places} decimals`;
    } catch (error) {
      hint.textContent = "Enter the token's decimals (its contract says how many; USDC has 6).";
    }
  }
  function abiString(hex) {
    const data = hex.replace(/^0x/, "");
    if (data.length < 128) return "";
    const length = parseInt(data.slice(64, 128), 16);
    const bytes = data.slice(128, 128 + length * 2).match(/../g) || [];
    return new TextDecoder().decode(new Uint8Array(bytes.map((b) => parseInt(b, 16))));
  }

  const chain = () => $("offers-chain").value;
  function refresh() {
    $("offers-empty").textContent = "No offers: this video is not for sale on this chain.";
    $("offers-empty").hidden = rows.children.length > 0;
  }
  // The rows as the API takes them; throws a MarketError naming the row at fault.
  function read() {
    return [...rows.children].map((item, index) => {
      const value = (name) => item.querySelector(`[name=${name}]`).value.trim();
      const where = `Offer ${index + 1}`;
      const kind = value("kind");
      let currency = null;
      let places = 18;
      if (value("currency") === "token") {
        currency = value("token");
        if (!/^0x[0-9a-fA-F]{40}$/.test(currency)) throw new SGMarket.MarketError(`${where}: the token address must be 0x and 40 hexadecimal digits.`);
        if (!/^\d+$/.test(value("decimals"))) throw new SGMarket.MarketError(`${where}: enter the token's decimals.`);
        places = Number(value("decimals"));
      }
      let amount;
      try { amount = SGMarket.parseAmount(value("amount"), places); } catch (error) { throw new SGMarket.MarketError(`${where}: ${error.message}`); }
      if (BigInt(amount) <= 0n) throw new SGMarket.MarketError(`${where}: the amount must be more than 0.`);
      let period = 0;
      if (kind !== "purchase") {
        if (!/^\d+$/.test(value("period")) || Number(value("period")) < 1) throw new SGMarket.MarketError(`${where}: a ${kind} needs a period of at least 1.`);
        period = Number(value("period")) * Number(value("unit"));
      }
      return { chain: chain(), kind, currency, amount, period_seconds: period };
    });
  }

  function show(text, kind) {
    SG.notice(status, text, kind);
    const box = status.firstElementChild;
    if (box) box.dataset.kind = kind || "info";
  }
  // The live offers of the chosen chain, as rows.
  function load(offers) {
    live = offers || [];
    for (const offer of live) {
      if (offer.currency && offer.currency.address) tokens.set(offer.currency.address.toLowerCase(), offer.currency);
    }
    rows.innerHTML = "";
    live.filter((offer) => offer.chain === chain()).forEach((offer) => rows.append(row(offer)));
    refresh();
  }
  // The same terms, whatever the order: what was signed is now what the chain says.
  function sameTerms(a, b) {
    const address = (c) => ((c && typeof c === "object" ? c.address : c) || "").toLowerCase();
    const key = (o) => [o.kind, address(o.currency), String(o.amount), Number(o.period_seconds) || 0].join("|");
    const left = a.map(key).sort();
    const right = b.map(key).sort();
    return left.length === right.length && left.every((item, index) => item === right[index]);
  }

  let publishing = false;
  async function publish() {
    if (publishing) return;
    let offers;
    try { offers = read(); } catch (error) { show(SGMarket.describe(error), "error"); return; }
    publishing = true;
    $("publish-offers").disabled = true;
    const body = { chain: chain(), offers };
    try {
      show("Preparing the offers for your signature…");
      const asked = await SG.api("PUT", url + "offers/", body);
      if (asked.status !== 202 || !asked.data || !asked.data.typed_data) throw new SGMarket.MarketError(SG.message(asked.data, "The offers could not be prepared."));
      const { typed_data: typedData, signer } = asked.data;
      show("Connecting to your wallet…");
      const account = await SGMarket.connect();
      if (signer && account.toLowerCase() !== signer.toLowerCase()) {
        throw new SGMarket.MarketError(`Your wallet's account ${SGMarket.short(account)} is not the creator wallet linked to this video's registration, ${signer}. Switch to that account in your wallet and try again.`);
      }
      await SGMarket.ensureChain(chain(), names); // wallets sign typed data for the chain they are on
      show("Sign the offers in your wallet…");
      const signature = await SGMarket.signTypedData(signer || account, typedData);
      const sent = await SG.api("PUT", url + "offers/", { ...body, signature });
      if (sent.status !== 200) throw new SGMarket.MarketError(SG.message(sent.data, "The signed offers were refused."));
      await follow(sent.data, offers);
    } catch (error) {
      show(SGMarket.describe(error), "error");
    } finally {
      publishing = false;
      $("publish-offers").disabled = false;
    }
  }
  function relaying(answer) {
    const tx = answer && answer.tx_hash ? ` (transaction ${SGMarket.short(answer.tx_hash)})` : "";
    show(`Relaying: StreamGate is sending your signed offers on chain${tx}. They go live once confirmed.`);
    status.dataset.state = "relaying";
  }
  // Until the chain's offers are the signed ones (live) or the relay failed, asking the
  // offers' own status (GET …/offers/) and the content's live offers.
  async function follow(answer, signed) {
    relaying(answer);
    const deadline = Date.now() + 10 * 60_000;
    const caip2 = answer.chain || chain();
    while (Date.now() < deadline) {
      await SGMarket.sleep(1500);
      // GET …/offers/: the newest signed set per chain, with its status and error.
      const sets = await SG.api("GET", url + "offers/");
      const mine = sets.status === 200 && Array.isArray(sets.data) ? sets.data.find((set) => set.chain === caip2) : null;
      if (mine && mine.status === "failed") {
        status.dataset.state = "failed";
        show(`Failed: the offers did not go on chain. ${mine.error || ""}`.trim(), "error");
        return;
      }
      if (mine && mine.status !== "live") {
        relaying(mine);
        continue;
      }
      const content = await SG.api("GET", url);
      if (content.status === 200 && sameTerms((content.data.offers || []).filter((o) => o.chain === caip2), signed)) {
        load(content.data.offers);
        status.dataset.state = "live";
        show(signed.length ? "Live: viewers can buy with these offers now." : "Live: this video is no longer for sale on this chain.", "ok");
        return;
      }
    }
    show("Still relaying after 10 minutes: reload this page later to see whether the offers went live.", "error");
  }

  $("add-offer").addEventListener("click", () => {
    const item = row();
    rows.append(item);
    refresh();
    item.querySelector("select").focus();
  });
  $("publish-offers").addEventListener("click", publish);
  $("offers-chain").addEventListener("change", () => load(live));
  // The live offers, then any signed set still on its way (relaying) or failed; the buttons
  // wait for them, so that a row added meanwhile is not wiped by the load.
  (async () => {
    const [content, sets] = await Promise.all([SG.api("GET", url), SG.api("GET", url + "offers/")]);
    if (content.status === 200) load(content.data.offers);
    else refresh();
    $("add-offer").disabled = false;
    $("publish-offers").disabled = false;
    const pending = sets.status === 200 && Array.isArray(sets.data) ? sets.data.find((set) => set.chain === chain()) : null;
    if (pending && pending.status === "failed") {
      status.dataset.state = "failed";
      show(`The last offers you signed failed to go on chain: ${pending.error || "unknown error"}. Sign them again.`, "error");
    } else if (pending && (pending.status === "relaying" || pending.status === "submitted")) {
      publishing = true;
      $("publish-offers").disabled = true;
      await follow(pending, pending.offers);
      publishing = false;
      $("publish-offers").disabled = false;
    }
  })();
})();
