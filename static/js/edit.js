// The content page of the studio: details, the gate editor (validated by the API, whose errors
// name the rule's bad node), retry, delete, embed snippet and on-chain registration.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("edit-config").textContent);
  const $ = (id) => document.getElementById(id);
  const url = `/api/v1/contents/${config.id}/`;
  const messages = $("messages");
  const KINDS = {
    erc721: "holds an ERC-721 token",
    erc1155: "holds an ERC-1155 balance",
    metaplex: "holds a Solana NFT of a collection",
    allowlist: "is one of these accounts",
    purchase: "bought or rented this video (its offers)",
    membership: "holds a membership of yours (its offers)",
  };
  // Only chains with an RPC can be checked; the API refuses the others (and says which exist).
  const gateChains = config.gateChains || [];
  const defaultChain = gateChains.find((chain) => chain.startsWith("eip155:")) || "";
  const defaultSolana = gateChains.find((chain) => chain.startsWith("solana:")) || "";
  // A token condition needs a chain this server can ask; without one, offer only allowlists.
  for (const [kind, namespace] of [["erc721", "eip155"], ["erc1155", "eip155"], ["metaplex", "solana"], ["purchase", "eip155"], ["membership", "eip155"]]) {
    const option = document.querySelector(`#new-kind option[value=${kind}]`);
    if (option && !gateChains.some((chain) => chain.startsWith(namespace + ":"))) {
      option.disabled = true;
      option.textContent += " (no chain configured)";
    }
  }

  function field(label, name, value, placeholder) {
    const id = `f${Math.random().toString(36).slice(2)}`;
    const wrap = document.createElement("div");
    wrap.innerHTML = `<label for="${id}"></label><input type="text" id="${id}">`;
    wrap.querySelector("label").textContent = label;
    const input = wrap.querySelector("input");
    input.name = name;
    input.value = value || "";
    input.placeholder = placeholder || "";
    if (name === "contract" || name === "collection" || name === "accounts") {
      wrap.className = "wide";
      input.spellcheck = false;
      input.autocapitalize = "off";
      input.classList.add("mono");
    }
    return wrap;
  }
  // The chains a condition may name, by name; one the server cannot check (a rule saved
  // before its RPC was removed) stays visible, marked, so that saving explains the refusal.
  function chainField(value, namespace, label = "Token's chain") {
    const id = `f${Math.random().toString(36).slice(2)}`;
    const wrap = document.createElement("div");
    wrap.innerHTML = `<label for="${id}"></label><select id="${id}" name="chain"></select>`;
    wrap.querySelector("label").textContent = label;
    const select = wrap.querySelector("select");
    const names = config.chainNames || {};
    const offered = gateChains.filter((chain) => chain.startsWith(namespace + ":"));
    if (value && !offered.includes(value)) offered.unshift(value);
    for (const chain of offered) {
      const option = document.createElement("option");
      option.value = chain;
      const known = gateChains.includes(chain);
      option.textContent = `${names[chain] || chain}${known ? "" : " (not checked by this server)"}`;
      select.appendChild(option);
    }
    if (value) select.value = value;
    return wrap;
  }
  function conditionNode(kind, spec) {
    spec = spec || {};
    const node = document.createElement("div");
    node.className = "gate-node";
    node.dataset.kind = kind;
    const head = document.createElement("div");
    head.className = "row";
    head.innerHTML = `<strong>The viewer ${KINDS[kind]}</strong>`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn danger";
    remove.textContent = "Remove";
    remove.style.flex = "0";
    remove.addEventListener("click", () => { node.remove(); sync(); });
    head.appendChild(remove);
    node.appendChild(head);
    const row = document.createElement("div");
    row.className = "row";
    const ids = Array.isArray(spec.token_id) ? spec.token_id.join(", ") : spec.token_id || "";
    if (kind === "erc721" || kind === "erc1155") {
      row.append(chainField(spec.chain || defaultChain, "eip155"));
      row.append(field("Contract", "contract", spec.contract, "0x…"));
      row.append(field(kind === "erc721" ? "Token ids (empty: any)" : "Token ids", "token_id", ids, "7, 8"));
      if (kind === "erc1155") row.append(field("Minimum balance", "min_balance", spec.min_balance || "1"));
    } else if (kind === "purchase" || kind === "membership") {
      row.append(chainField(spec.chain || defaultChain, "eip155", "Offers' chain"));
    } else if (kind === "metaplex") {
      row.append(chainField(spec.chain || defaultSolana, "solana"));
      row.append(field("Collection mint", "collection", spec.collection, "base58"));
    } else {
      row.append(field("Accounts (CAIP-10, comma-separated)", "accounts", (spec.accounts || []).join(", "), "eip155:1:0x…"));
    }
    node.appendChild(row);
    node.addEventListener("input", sync);
    return node;
  }
  function readNode(node) {
    const value = (name) => (node.querySelector(`[name=${name}]`) || {}).value?.trim() || "";
    const list = (name) => value(name).split(",").map((part) => part.trim()).filter(Boolean);
    const kind = node.dataset.kind;
    if (kind === "erc721" || kind === "erc1155") {
      const ids = list("token_id");
      const spec = { chain: value("chain"), contract: value("contract"), token_id: ids.length === 0 ? null : ids.length === 1 ? ids[0] : ids };
      if (kind === "erc1155") spec.min_balance = value("min_balance") || "1";
      return { [kind]: spec };
    }
    if (kind === "metaplex") return { metaplex: { chain: value("chain"), collection: value("collection") } };
    if (kind === "purchase" || kind === "membership") return { [kind]: { chain: value("chain") } };
    return { allowlist: { accounts: list("accounts") } };
  }
  function built() {
    const combinator = $("combinator").value;
    if (combinator === "none") return null;
    return { [combinator]: [...$("conditions").children].map(readNode) };
  }
  function sync() {
    $("gate-json").value = JSON.stringify(built(), null, 2);
  }
  function load(gate) {
    $("conditions").innerHTML = "";
    $("combinator").disabled = false;
    $("add-condition").disabled = false;
    $("gate-json").value = JSON.stringify(gate, null, 2);
    if (!gate) { $("combinator").value = "none"; return; }
    const combinator = Object.keys(gate)[0];
    const items = gate[combinator];
    const simple = (combinator === "any" || combinator === "all") && items.every((item) => KINDS[Object.keys(item)[0]]);
    if (!simple) {
      $("advanced").open = true;
      $("combinator").value = "none";
      $("combinator").disabled = true;
      $("add-condition").disabled = true; // the builder would overwrite the nested rule
      SG.notice($("gate-errors"), "This rule uses nesting: edit it as JSON below.");
      return;
    }
    $("combinator").value = combinator;
    items.forEach((item) => { const kind = Object.keys(item)[0]; $("conditions").appendChild(conditionNode(kind, item[kind])); });
  }

  $("add-condition").addEventListener("click", () => {
    const kind = $("new-kind").value;
    if ($("combinator").value === "none") $("combinator").value = "any";
    $("conditions").appendChild(conditionNode(kind));
    sync();
  });
  $("combinator").addEventListener("change", sync);
  $("save-gate").addEventListener("click", async () => {
    let gate;
    try { gate = JSON.parse($("gate-json").value || "null"); } catch (error) {
      SG.notice($("gate-errors"), `The rule is not valid JSON: ${error.message}`, "error");
      return;
    }
    const saved = await SG.api("PATCH", url, { gate });
    if (saved.status === 200) {
      load(saved.data.gate);
      SG.notice($("gate-errors"), "Rule saved.", "ok");
    } else if (saved.status === 400 && saved.data && saved.data.gate) {
      const problem = saved.data.gate;
      const text = problem.path ? `${problem.path}: ${problem.detail}` : SG.message(saved.data);
      SG.notice($("gate-errors"), `The rule was not saved. ${text}`, "error");
    } else {
      SG.notice($("gate-errors"), SG.message(saved.data, "The rule was not saved."), "error");
    }
  });
  $("details").addEventListener("submit", async (event) => {
    event.preventDefault();
    const saved = await SG.api("PATCH", url, { title: $("title").value, description: $("description").value });
    SG.notice(messages, saved.status === 200 ? "Details saved." : SG.message(saved.data), saved.status === 200 ? "ok" : "error");
    if (saved.status === 200) { // the heading and the tab follow the saved title
      $("heading").textContent = saved.data.title;
      document.title = document.title.replace(/^.*( · StreamGate)$/, (whole, site) => saved.data.title + site);
    }
  });
  $("delete").addEventListener("click", async () => {
    if (!confirm("Delete this video and all its files? This cannot be undone.")) return;
    const deleted = await SG.api("DELETE", url);
    if (deleted.status === 204) location.assign("/studio/");
    else SG.notice(messages, SG.message(deleted.data), "error");
  });
  if ($("retry")) $("retry").addEventListener("click", async () => {
    const retried = await SG.api("POST", url + "retry/");
    if (retried.status === 202) location.reload();
    else SG.notice(messages, SG.message(retried.data), "error");
  });
  if ($("copy")) $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("snippet").textContent);
      SG.notice(messages, "Snippet copied.", "ok");
    } catch (error) {
      SG.notice(messages, "Copy failed: select the snippet and copy it by hand.", "error");
    }
  });
  if ($("register")) $("register").addEventListener("submit", async (event) => {
    event.preventDefault();
    const sent = await SG.api("POST", url + "register/", { chain: $("chain").value, price: $("price").value || "0" });
    SG.notice(messages, sent.status === 202 ? "Registration sent; its status updates here." : SG.message(sent.data), sent.status === 202 ? "ok" : "error");
  });
  load(config.gate);
  const status = $("status");
  if (!["ready", "failed", "draft"].includes(status.textContent.trim())) {
    SG.follow(config.id, (message) => {
      if (message.type === "playable" && $("watch")) {
        // A long video still processing: watchable from its first parts, more as they arrive.
        $("watch").hidden = false;
        const of = config.duration ? ` of ${SG.clock(config.duration)}` : "";
        $("playable").textContent = `Still processing: ${SG.clock(message.seconds)}${of} can be watched already.`;
        return;
      }
      if (message.type !== "status") return;
      status.textContent = message.status;
      status.className = "badge " + message.status;
      if (message.status === "ready" || message.status === "failed") location.reload(); // its actions change
    });
  }
})();
