// Compile src/*.sol with solc-js into build/<Contract>.json (abi, bytecode, compiler, sourceHash).
// The artifacts are committed so that Python never needs a compiler; a test checks they match
// the sources (sourceHash covers our sources and the OpenZeppelin version they import).
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const root = dirname(fileURLToPath(import.meta.url));
const sourceDir = join(root, "src");
// `node compile.mjs --out DIR` writes elsewhere (the test suite compiles into a temporary folder
// and compares with the committed artifacts).
const outFlag = process.argv.indexOf("--out");
const buildDir = outFlag > 0 ? process.argv[outFlag + 1] : join(root, "build");
const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

const files = readdirSync(sourceDir).filter((name) => name.endsWith(".sol")).sort();
const sources = Object.fromEntries(
  files.map((name) => [name, { content: readFileSync(join(sourceDir, name), "utf8") }]),
);

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

// What the artifacts depend on: our sources, this script (and so the settings), the compiler and
// the library version. The test suite also recompiles and compares, so this is a quick label.
function sourceHash() {
  const hash = createHash("sha256");
  for (const name of files) {
    hash.update(name + "\0" + sources[name].content + "\0");
  }
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  hash.update("solc " + solc.version() + "\0");
  hash.update("@openzeppelin/contracts " + packageJson.devDependencies["@openzeppelin/contracts"]);
  return hash.digest("hex");
}

function findImport(path) {
  try {
    return { contents: readFileSync(join(root, "node_modules", path), "utf8") };
  } catch (error) {
    return { error: `import not found: ${path}` };
  }
}

const input = { language: "Solidity", sources, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
const errors = (output.errors || []).filter((item) => item.severity === "error");
for (const item of output.errors || []) console.error(item.formattedMessage);
if (errors.length) process.exit(1);

mkdirSync(buildDir, { recursive: true });
for (const stale of readdirSync(buildDir).filter((name) => name.endsWith(".json"))) {
  rmSync(join(buildDir, stale)); // an artifact of a deleted contract must not linger
}
const hash = sourceHash();
for (const name of files) {
  for (const [contractName, compiled] of Object.entries(output.contracts[name])) {
    const artifact = {
      contractName,
      sourceName: `src/${name}`,
      abi: compiled.abi,
      bytecode: "0x" + compiled.evm.bytecode.object,
      deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
      compiler: `solc-js ${solc.version()}`,
      settings: input.settings,
      sourceHash: hash,
    };
    writeFileSync(join(buildDir, `${contractName}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`build/${contractName}.json`);
  }
}
