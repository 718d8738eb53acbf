// Selling access, shared by the watch page (purchase.js), the studio's offers editor
// (offers-edit.js) and the sales page (sales.js): amounts in a currency's smallest unit as
// decimal strings (BigInt, never floating point), periods in words, offer labels, and the
// EIP-1193 wallet steps (connect, switch chain, send a transaction, wait for its receipt, sign
// typed data) with their failures in words.
"use strict";
const SGMarket = (() => {
  // An error whose message is meant for the user as it is.
  class MarketError extends Error {}

  // "10000000000000000" with 18 decimals -> "0.01"; no trailing zeros, thousands left alone.
  function formatAmount(amount, decimals) {
    const digits = BigInt(String(amount)).toString();
    const places = Number(decimals) || 0;
    if (!places) return digits;
    const padded = digits.padStart(places + 1, "0");
    const whole = padded.slice(0, padded.length - places);
    const fraction = padded.slice(padded.length - places).replace(/0+$/, "");
    return fraction ? `${whole}.${fraction}` : whole;
  }
  // "0.01" with 18 decimals -> "10000000000000000"; throws a MarketError for what is not a
  // plain non-negative number or has more decimals than the currency.
  function parseAmount(text, decimals) {
    const value = String(text).trim().replace(/,/g, ".");
    const match = value.match(/^(\d*)(?:\.(\d*))?$/);
    if (!match || (!match[1] && !match[2])) throw new MarketError(`“${text}” is not an amount: use digits and at most one decimal point, e.g. 0.01.`);
    const places = Number(decimals) || 0;
    const fraction = (match[2] || "").replace(/0+$/, "");
    if (fraction.length > places) throw new MarketError(`This currency has ${places} decimals: “${text}” is more precise than that.`);
    return BigInt((match[1] || "0") + fraction.padEnd(places, "0")).toString();
  }
  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }
  // 172800 -> "48 h", 2592000 -> "30 days", 86400 -> "24 h", 5400 -> "90 min".
  function period(seconds) {
    const value = Number(seconds);
    if (value >= 3 * 86400 && value % 86400 === 0) return plural(value / 86400, "day");
    if (value >= 3600 && value % 3600 === 0) return `${value / 3600} h`;
    if (value >= 60 && value % 60 === 0) return `${value / 60} min`;
    return `${value} s`;
  }
  function short(address) {
    return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : "";
  }
  // A currency as the API gives it: {"address" (null: native), "symbol", "decimals"}.
  function price(amount, currency) {
    const unit = (currency && currency.symbol) || (currency && currency.address ? `tokens ${short(currency.address)}` : "");
    return `${formatAmount(amount, currency ? currency.decimals : 0)} ${unit}`.trim();
  }
  // "Buy for 0.01 ETH", "Rent 48 h for 2 USDC", "Membership 30 days for 5 USDC".
  function offerLabel(offer) {
    const cost = price(offer.amount, offer.currency);
    if (offer.kind === "rental") return `Rent ${period(offer.period_seconds)} for ${cost}`;
    if (offer.kind === "membership") return `Membership ${period(offer.period_seconds)} for ${cost}`;
    return `Buy for ${cost}`;
  }
  // What the offer gives, in a sentence (under its button).
  function offerDetail(offer) {
    if (offer.kind === "rental") return `Watch this video for ${period(offer.period_seconds)} from the purchase.`;
    if (offer.kind === "membership") return `Watch all of this creator's videos for ${period(offer.period_seconds)}.`;
    return "Watch this video for as long as it is here.";
  }
  // "eip155:31337" -> "0x7a69".
  function chainHex(caip2) {
    const reference = String(caip2).split(":")[1] || "";
    if (!/^\d+$/.test(reference)) throw new MarketError(`${caip2} is not an EVM chain.`);
    return "0x" + BigInt(reference).toString(16);
  }

  function provider() {
    const found = window.ethereum;
    if (!found || typeof found.request !== "function") {
      throw new MarketError("No Ethereum wallet was found in this browser. Install one (such as MetaMask or Rabby) and reload this page.");
    }
    return found;
  }
  // The wallet's account, asking to connect when it shares none yet.
  async function connect() {
    const wallet = provider();
    let accounts = await wallet.request({ method: "eth_accounts" }).catch(() => []);
    if (!accounts || !accounts.length) accounts = await wallet.request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new MarketError("Your wallet shared no account.");
    return accounts[0];
  }
  // Puts the wallet on ``caip2``; the user may refuse (4001) or not know the chain (4902).
  async function ensureChain(caip2, names) {
    const wallet = provider();
    const wanted = chainHex(caip2);
    const current = await wallet.request({ method: "eth_chainId" });
    if (current && BigInt(current) === BigInt(wanted)) return;
    try {
      await wallet.request({ method: "wallet_switchEthereumChain", params: [{ chainId: wanted }] });
    } catch (error) {
      const name = (names && names[caip2]) || caip2;
      if (error && (error.code === 4902 || (error.data && error.data.originalError && error.data.originalError.code === 4902))) {
        throw new MarketError(`Your wallet does not know the network ${name} (chain id ${BigInt(wanted)}). Add it in your wallet, then try again.`);
      }
      if (rejected(error)) throw new MarketError(`Your wallet stayed on another network. This purchase happens on ${name}: switch to it and try again.`);
      throw error;
    }
    const after = await wallet.request({ method: "eth_chainId" });
    if (!after || BigInt(after) !== BigInt(wanted)) {
      throw new MarketError(`Your wallet is on the wrong network (chain id ${after ? BigInt(after) : "unknown"}); switch it to ${(names && names[caip2]) || caip2} and try again.`);
    }
  }
  // Sends one transaction the API built ({chainId, to, data, value}); returns its hash.
  async function send(tx, from) {
    const params = { from, to: tx.to, data: tx.data, value: tx.value || "0x0" };
    if (tx.chainId) params.chainId = tx.chainId;
    return provider().request({ method: "eth_sendTransaction", params: [params] });
  }
  // Resolves with the receipt once the wallet's node has mined ``hash``; throws if it reverted.
  async function receipt(hash, { interval = 1000, timeout = 600_000 } = {}) {
    const wallet = provider();
    const deadline = Date.now() + timeout;
    for (;;) {
      const found = await wallet.request({ method: "eth_getTransactionReceipt", params: [hash] }).catch(() => null);
      if (found && found.blockNumber) {
        if (found.status !== undefined && BigInt(found.status) === 0n) throw new MarketError(`The transaction ${short(hash)} was reverted by the contract. Nothing was paid apart from its gas.`);
        return found;
      }
      if (Date.now() > deadline) throw new MarketError(`The transaction ${short(hash)} was not mined in ${timeout / 60000} minutes. Check it in your wallet.`);
      await sleep(interval);
    }
  }
  // The transactions of a 200 answer ({"transactions": [...]}), or null.
  function transactionsOf(answer) {
    const data = answer && answer.status === 200 && answer.data;
    const list = Array.isArray(data) ? data : null;
    return Array.isArray(list) && list.length ? list : null;
  }
  // eth_signTypedData_v4 as wallets take it: the address, then the typed data as a JSON string.
  async function signTypedData(signer, typedData) {
    return provider().request({ method: "eth_signTypedData_v4", params: [signer, JSON.stringify(typedData)] });
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  function rejected(error) {
    return error && (error.code === 4001 || /user (rejected|denied)|rejected by user|cancel/i.test(String(error.message || error)));
  }
  // What went wrong, in words, whatever threw.
  function describe(error) {
    if (error instanceof MarketError) return error.message;
    if (rejected(error)) return "You declined the request in your wallet. Nothing was sent or signed.";
    const text = String((error && (error.data && error.data.message)) || (error && error.message) || error);
    if (/revert/i.test(text)) return `The contract refused the transaction: ${text}`;
    if (/insufficient funds/i.test(text)) return "Your wallet does not hold enough to pay for this and its gas.";
    if (error && error.code === 4100) return "Your wallet did not let this site use the account. Connect it to this site and try again.";
    return `Your wallet reported an error: ${text}`;
  }
  return { MarketError, formatAmount, parseAmount, period, price, short, offerLabel, offerDetail, chainHex, connect, ensureChain, send, receipt, transactionsOf, signTypedData, describe, sleep, rejected };
})();
