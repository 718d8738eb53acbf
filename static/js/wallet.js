// Wallet signatures, shared by sign-in (signin.js) and linking (account.js): EIP-4361 through
// any EIP-1193 provider (window.ethereum), Sign In With Solana through Phantom-style providers
// (window.phantom.solana or window.solana). Each asks the API for a fresh nonce, builds the
// message, has the wallet sign it and returns the body the API's verify or link call expects.
"use strict";
const SGWallet = (() => {
  // An error whose message is meant for the user as it is.
  class WalletError extends Error {}

  // EIP-55: the mixed-case checksum address SIWE requires (keccak256 from js-sha3).
  function checksum(address) {
    const lower = address.toLowerCase().replace(/^0x/, "");
    const hash = keccak256(lower);
    let out = "0x";
    for (let i = 0; i < lower.length; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
    return out;
  }
  // EIP-4361: a message without a scheme is for https; name any other scheme.
  function origin(nonce) {
    const scheme = new URL(nonce.uri).protocol.replace(/:$/, "");
    return scheme === "https" ? nonce.domain : `${scheme}://${nonce.domain}`;
  }
  function isoNow() {
    return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  }
  // EIP-4361 and Sign In With Solana share this layout (statement, then the fields).
  function signInText(nonce, account, address, chainId, statement) {
    return [
      `${origin(nonce)} wants you to sign in with your ${account} account:`,
      address,
      "",
      statement,
      "",
      `URI: ${nonce.uri}`,
      "Version: 1",
      `Chain ID: ${chainId}`,
      `Nonce: ${nonce.nonce}`,
      `Issued At: ${isoNow()}`,
    ].join("\n");
  }
  const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  function base58(bytes) {
    let digits = [0];
    for (const byte of bytes) {
      let carry = byte;
      for (let j = 0; j < digits.length; j++) { carry += digits[j] << 8; digits[j] = carry % 58; carry = (carry / 58) | 0; }
      while (carry) { digits.push(carry % 58); carry = (carry / 58) | 0; }
    }
    let out = "";
    for (const byte of bytes) { if (byte !== 0) break; out += "1"; }
    for (let k = digits.length - 1; k >= 0; k--) out += B58[digits[k]];
    return out;
  }
  function rejected(error) {
    return error && (error.code === 4001 || /reject|denied|cancel/i.test(String(error.message || error)));
  }
  // What went wrong, in words, whatever threw.
  function describe(error) {
    if (error instanceof WalletError) return error.message;
    return rejected(error) ? "You declined the request in your wallet. Nothing was signed." : `Your wallet reported an error: ${error.message || error}`;
  }
  async function nonceFor(kind) {
    const nonce = await SG.api("POST", `/api/v1/auth/${kind}/nonce/`);
    if (nonce.status !== 201) throw new WalletError(SG.message(nonce.data, "Could not start signing in."));
    return nonce.data;
  }

  // options: { evmChainIds, statement, show(text) }. Returns { message, signature, address }.
  async function signEthereum(options) {
    const provider = window.ethereum;
    if (!provider || typeof provider.request !== "function") {
      throw new WalletError("No Ethereum wallet was found in this browser. Install one (such as MetaMask or Rabby) and reload this page.");
    }
    options.show("Waiting for your wallet…");
    const accounts = await provider.request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new WalletError("Your wallet shared no account.");
    const address = checksum(accounts[0]);
    const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
    if (options.evmChainIds.length && !options.evmChainIds.includes(chainId)) {
      throw new WalletError(`Your wallet is on network ${chainId}, which this site does not accept. Switch networks and try again.`);
    }
    const nonce = await nonceFor("siwe");
    const message = signInText(nonce, "Ethereum", address, chainId, options.statement);
    options.show("Confirm the message in your wallet…");
    const signature = await provider.request({ method: "personal_sign", params: [message, accounts[0]] });
    return { message, signature, address };
  }

  // options: { solanaChains, statement, show(text) }. Returns { message, signature, public_key }.
  async function signSolana(options) {
    const provider = (window.phantom && window.phantom.solana) || window.solana;
    if (!provider || typeof provider.signMessage !== "function") {
      throw new WalletError("No Solana wallet was found in this browser. Install one (such as Phantom) and reload this page.");
    }
    options.show("Waiting for your wallet…");
    const connected = await provider.connect();
    const publicKey = (connected && connected.publicKey) || provider.publicKey;
    const address = publicKey.toBase58 ? publicKey.toBase58() : String(publicKey);
    const chain = options.solanaChains[0] || "solana:mainnet";
    const nonce = await nonceFor("solana");
    const message = signInText(nonce, "Solana", address, chain.replace(/^solana:/, ""), options.statement);
    options.show("Confirm the message in your wallet…");
    const signed = await provider.signMessage(new TextEncoder().encode(message), "utf8");
    return { message, signature: base58(signed.signature || signed), public_key: address };
  }

  // The API's refusal of a signed message, in words.
  const REASONS = {
    chain_not_allowed: "This network is not accepted here. Switch your wallet to a supported network and try again.",
    nonce_used: "That sign-in request was already used. Please try again.",
    nonce_unknown: "That sign-in request is unknown or expired. Please try again.",
    nonce_expired: "That sign-in request expired. Please try again.",
    bad_signature: "The signature did not match your address.",
  };
  function refusal(data, fallback) {
    return REASONS[data && data.reason] || SG.message(data, fallback);
  }
  return { signEthereum, signSolana, describe, refusal };
})();
