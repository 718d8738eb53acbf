// Wallet sign-in: the wallet signs a fresh nonce's message (wallet.js), the API checks it and
// opens the session, and the page goes on to where the visitor was heading.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("signin-config").textContent);
  const status = document.getElementById("wallet-status");
  const show = (text, kind) => SG.notice(status, text, kind);
  const statement = "Sign in to StreamGate to watch what your wallet unlocks.";

  async function finish(kind, body) {
    const verified = await SG.api("POST", `/api/v1/auth/${kind}/verify/`, body);
    if (verified.status === 200) {
      show(`Signed in as ${verified.data.account}.`, "ok");
      location.assign(SG.safeNext(config.next));
      return;
    }
    show(SGWallet.refusal(verified.data, "Sign-in failed."), "error");
  }

  async function signInWithEthereum() {
    try {
      const signed = await SGWallet.signEthereum({ evmChainIds: config.evmChainIds, statement, show });
      await finish("siwe", { message: signed.message, signature: signed.signature });
    } catch (error) {
      show(SGWallet.describe(error), "error");
    }
  }

  async function signInWithSolana() {
    try {
      const signed = await SGWallet.signSolana({ solanaChains: config.solanaChains, statement, show });
      await finish("solana", signed);
    } catch (error) {
      show(SGWallet.describe(error), "error");
    }
  }

  document.getElementById("siwe").addEventListener("click", signInWithEthereum);
  document.getElementById("siws").addEventListener("click", signInWithSolana);
})();
