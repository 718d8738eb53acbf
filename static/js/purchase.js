// Buying access on the watch page: one real button per offer ("Buy for 0.01 ETH", "Rent 48 h
// for 2 USDC"), then the EIP-1193 wallet (connect, switch chain, send the transactions the API
// builds) and the purchase's live status (sent, mined, confirmed, indexed) in the region under
// the player, which outlives the gate panel: the player starts as soon as the API says the
// purchase is playable, with no reload. watch.js calls StreamGatePurchase.offers() when playback
// answers 403 "purchase_required".
"use strict";
window.StreamGatePurchase = (() => {
  const STEPS = [
    ["sent", "Sent"],
    ["mined", "Mined"],
    ["confirmed", "Confirmed"],
    ["indexed", "Indexed"],
  ];
  const region = document.getElementById("purchase-status");
  let busy = false;

  const el = SG.el;
  // The status region: a line of words and, once a payment is sent, the four steps.
  function say(text, kind) {
    let line = region.querySelector("[data-role=line]");
    if (!line) {
      line = el("div", { "data-role": "line" });
      region.prepend(line);
    }
    line.className = "notice" + (kind ? " " + kind : "");
    line.dataset.kind = kind || "info";
    line.textContent = text;
  }
  function steps(reached) {
    let list = region.querySelector("ol.purchase-steps");
    if (!list) {
      list = el("ol", { class: "purchase-steps", "data-testid": "purchase-steps", "aria-label": "Purchase progress" });
      for (const [name, label] of STEPS) list.append(el("li", { "data-step": name, text: label }));
      region.append(list);
    }
    const index = STEPS.findIndex(([name]) => name === reached);
    list.querySelectorAll("li").forEach((item, at) => {
      item.dataset.state = at < index ? "done" : at === index ? "current" : "todo";
      if (at === index) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    });
    region.dataset.state = reached;
  }

  // The offers' buttons, for the gate panel. options: { contentId, chainNames, onPlayable }.
  function offers(list, options) {
    const box = el("div", { class: "offers", "data-testid": "offers" });
    if (!list || !list.length) {
      box.append(el("p", { text: "This video is not for sale right now." }));
      return box;
    }
    const items = el("ul", { class: "offer-list" });
    for (const offer of list) {
      const button = el("button", { class: "btn", type: "button", "data-offer": String(offer.id), text: SGMarket.offerLabel(offer) });
      const chain = (options.chainNames && options.chainNames[offer.chain]) || offer.chain;
      const note = el("span", { class: "offer-note", text: `${SGMarket.offerDetail(offer)} On ${chain}.` });
      button.addEventListener("click", () => buy(offer, options, box));
      items.append(el("li", {}, button, note));
    }
    box.append(items);
    return box;
  }

  function lock(box, locked) {
    box.querySelectorAll("button").forEach((button) => { button.disabled = locked; });
  }

  // The transactions to send: for an ERC-20 with EIP-2612 permit, one buyWithPermit after a
  // signature (no approval transaction); otherwise what the API builds (an approval first when
  // the allowance is short).
  async function transactions(offer, account, contentId) {
    const url = `/api/v1/contents/${contentId}/purchase/`;
    if (offer.currency && offer.currency.address) {
      const asked = await SG.api("POST", url, { offer: offer.id, account, permit: true });
      if (asked.status === 202 && asked.data && asked.data.typed_data) {
        say("Sign the spending permit in your wallet (no transaction, no gas)…");
        const typedData = asked.data.typed_data;
        const signature = await SGMarket.signTypedData(account, typedData);
        const deadline = asked.data.deadline || typedData.message.deadline;
        const built = await SG.api("POST", url, { offer: offer.id, account, permit: true, signature, deadline });
        return checked(built);
      }
    }
    return checked(await SG.api("POST", url, { offer: offer.id, account }));
  }
  function checked(built) {
    const txs = SGMarket.transactionsOf(built);
    if (!txs) throw new SGMarket.MarketError(SG.message(built.data, "The purchase could not be prepared."));
    return txs;
  }

  async function buy(offer, options, box) {
    if (busy) return;
    busy = true;
    lock(box, true);
    region.querySelector("ol.purchase-steps")?.remove();
    let sent = null;
    try {
      say("Connecting to your wallet…");
      const account = await SGMarket.connect();
      say("Checking your wallet's network…");
      await SGMarket.ensureChain(offer.chain, options.chainNames);
      say("Preparing the transaction…");
      const txs = await transactions(offer, account, options.contentId);
      for (let index = 0; index < txs.length; index++) {
        const last = index === txs.length - 1;
        const what = last ? "the payment" : "spending of the token (an approval, step 1 of 2)";
        say(`Confirm ${what} in your wallet…`);
        const hash = await SGMarket.send(txs[index], account);
        if (last) { sent = hash; break; }
        say("Approval sent; waiting for it to be mined before the payment…");
        await SGMarket.receipt(hash);
      }
    } catch (error) {
      say(SGMarket.describe(error), "error");
      busy = false;
      lock(box, false);
      return;
    }
    await follow(sent, options, box);
  }

  // Polls the API about the payment until it is indexed (or failed). The player starts at the
  // first answer that says "playable".
  async function follow(hash, options, box) {
    const url = `/api/v1/contents/${options.contentId}/purchase/?tx=${encodeURIComponent(hash)}`;
    region.dataset.tx = hash;
    steps("sent");
    say(`Payment sent (transaction ${SGMarket.short(hash)}). Waiting for it to be mined…`);
    let started = false;
    let misses = 0;
    const deadline = Date.now() + 30 * 60_000;
    for (;;) {
      await SGMarket.sleep(started ? 2000 : 1000);
      const answer = await SG.api("GET", url);
      if (answer.status !== 200 || !answer.data) {
        misses++;
        if (answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
          say(SG.message(answer.data, "The purchase's status could not be read."), "error");
          break;
        }
        if (misses === 5) say("The server could not tell the purchase's status just now; still trying…");
        continue;
      }
      misses = 0;
      const { state, confirmations, playable } = answer.data;
      if (state === "failed") {
        steps("sent");
        say(`The payment failed on chain (transaction ${SGMarket.short(hash)} was reverted). Nothing was paid apart from its gas.`, "error");
        break;
      }
      if (state === "pending") {
        say(`Payment sent (transaction ${SGMarket.short(hash)}). Waiting for it to be mined…`);
      } else if (state === "mined") {
        steps("mined");
        const count = Number(confirmations) || 0;
        say(`Mined; waiting for confirmations (${count} so far)…`);
      } else if (state === "confirmed" || state === "indexed") {
        steps(state);
        say(state === "indexed" ? "Purchase complete: confirmed and indexed. Enjoy the video." : "Confirmed. Starting the video…", state === "indexed" ? "ok" : "");
      }
      // The player starts once playback answers 200 (asked again at the next answer if not).
      if (playable && !started) started = await options.onPlayable();
      if (state === "indexed") { busy = false; return; }
      if (Date.now() > deadline) {
        say("The purchase is taking longer than expected. Reload this page later; the transaction stays in your wallet's history.", "error");
        break;
      }
    }
    busy = false;
    lock(box, false);
  }

  // Prices as text, for a viewer who must sign in first (the 401 panel).
  function summary(list) {
    return (list || []).map((offer) => SGMarket.offerLabel(offer)).join(" · ");
  }
  return { offers, summary };
})();
