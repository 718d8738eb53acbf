// Wallet sign-in: EIP-4361 through any EIP-1193 provider (window.ethereum), and Sign In With
// Solana through Phantom-style providers (window.phantom.solana or window.solana).
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("signin-config").textContent);
  const status = document.getElementById("wallet-status");
  const show = (text, kind) => SG.notice(status, text, kind);

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
  // EIP-4361 and Sign In With Solana share this layout (statement, then the fields).
  function signInText(nonce, account, address, chainId) {
    return [
      `${origin(nonce)} wants you to sign in with your ${account} account:`,
      address,
      "",
      "Sign in to StreamGate to watch what your wallet unlocks.",
      "",
      `URI: ${nonce.uri}`,
      "Version: 1",
      `Chain ID: ${chainId}`,
      `Nonce: ${nonce.nonce}`,
      `Issued At: ${isoNow()}`,
    ].join("\n");
  }
  function isoNow() {
    return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
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
  async function finish(kind, body) {
    const verified = await SG.api("POST", `/api/v1/auth/${kind}/verify/`, body);
    if (verified.status === 200) {
      show(`Signed in as ${verified.data.account}.`, "ok");
      location.assign(SG.safeNext(config.next));
      return;
    }
    const reason = verified.data && verified.data.reason;
    const explain = {
      chain_not_allowed: "This network is not accepted here. Switch your wallet to a supported network and try again.",
      nonce_used: "That sign-in request was already used. Please try again.",
      nonce_unknown: "That sign-in request is unknown or expired. Please try again.",
      nonce_expired: "That sign-in request expired. Please try again.",
      bad_signature: "The signature did not match your address.",
    };
    show(explain[reason] || SG.message(verified.data, "Sign-in failed."), "error");
  }

  async function signInWithEthereum() {
    const provider = window.ethereum;
    if (!provider || typeof provider.request !== "function") {
      show("No Ethereum wallet was found in this browser. Install one (such as MetaMask or Rabby) and reload this page.", "error");
      return;
    }
    try {
      show("Waiting for your wallet…");
      const accounts = await provider.request({ method: "eth_requestAccounts" });
      if (!accounts || !accounts.length) { show("Your wallet shared no account.", "error"); return; }
      const address = checksum(accounts[0]);
      const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
      if (config.evmChainIds.length && !config.evmChainIds.includes(chainId)) {
        show(`Your wallet is on network ${chainId}, which this site does not accept. Switch networks and try again.`, "error");
        return;
      }
      const nonce = await SG.api("POST", "/api/v1/auth/siwe/nonce/");
      if (nonce.status !== 201) { show(SG.message(nonce.data, "Could not start signing in."), "error"); return; }
      const message = signInText(nonce.data, "Ethereum", address, chainId);
      show("Confirm the message in your wallet…");
      const signature = await provider.request({ method: "personal_sign", params: [message, accounts[0]] });
      await finish("siwe", { message, signature });
    } catch (error) {
      show(rejected(error) ? "You declined the request in your wallet. Nothing was signed." : `Your wallet reported an error: ${error.message || error}`, "error");
    }
  }

  async function signInWithSolana() {
    const provider = (window.phantom && window.phantom.solana) || window.solana;
    if (!provider || typeof provider.signMessage !== "function") {
      show("No Solana wallet was found in this browser. Install one (such as Phantom) and reload this page.", "error");
      return;
    }
    try {
      show("Waiting for your wallet…");
      const connected = await provider.connect();
      const publicKey = (connected && connected.publicKey) || provider.publicKey;
      const address = publicKey.toBase58 ? publicKey.toBase58() : String(publicKey);
      const chain = config.solanaChains[0] || "solana:mainnet";
      const nonce = await SG.api("POST", "/api/v1/auth/solana/nonce/");
      if (nonce.status !== 201) { show(SG.message(nonce.data, "Could not start signing in."), "error"); return; }
      const message = signInText(nonce.data, "Solana", address, chain.replace(/^solana:/, ""));
      show("Confirm the message in your wallet…");
      const signed = await provider.signMessage(new TextEncoder().encode(message), "utf8");
      const signature = base58(signed.signature || signed);
      await finish("solana", { message, signature, public_key: address });
    } catch (error) {
      show(rejected(error) ? "You declined the request in your wallet. Nothing was signed." : `Your wallet reported an error: ${error.message || error}`, "error");
    }
  }

  document.getElementById("siwe").addEventListener("click", signInWithEthereum);
  document.getElementById("siws").addEventListener("click", signInWithSolana);
})();
