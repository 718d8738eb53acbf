// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice An ERC-20 with EIP-2612 permit whose owner mints freely (a stand-in for USDC in
/// tests and demos of priced offers).
contract TestToken is ERC20, ERC20Permit, Ownable {
    uint8 private immutable places;

    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        Ownable(msg.sender)
    {
        places = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return places;
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}

/// @notice An ERC-20 without permit (buyers approve first), minted freely by its owner.
contract TestTokenPlain is ERC20, Ownable {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) Ownable(msg.sender) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}

/// @notice An ERC-20 that keeps 1 % of every transfer (a "fee on transfer" token), for the test
/// that the registry refuses what it cannot credit in full.
contract TestTokenTaxed is ERC20, Ownable {
    constructor() ERC20("Taxed", "TAX") Ownable(msg.sender) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 tax = value / 100;
        super._update(from, owner(), tax);
        super._update(from, to, value - tax);
    }
}
