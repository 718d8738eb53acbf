// An empty Hardhat config: `npx hardhat --config hardhat.config.cjs node` serves a local
// JSON-RPC chain (id 31337) with evm_snapshot / evm_revert / evm_mine, offline, for tests.
module.exports = {};
