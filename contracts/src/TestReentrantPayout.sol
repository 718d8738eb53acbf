// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IRegistry {
    function withdraw(address account, address token) external returns (uint256);
    function buy(bytes32 contentId, uint256 offerId, uint256 price) external payable returns (uint64);
}

/// @notice A payout address that tries to re-enter the registry when paid: to withdraw the same
/// balance again, or to buy with the money in flight. For tests of the reentrancy guard.
contract TestReentrantPayout {
    IRegistry public immutable registry;
    address public account;
    uint8 public mode; // 0: accept, 1: re-withdraw, 2: re-buy, 3: refuse payment
    bytes32 public contentId;
    uint256 public offerId;
    uint256 public reentered;
    bool public reentryFailed;

    constructor(IRegistry registry_) {
        registry = registry_;
    }

    function arm(address account_, uint8 mode_, bytes32 contentId_, uint256 offerId_) external {
        account = account_;
        mode = mode_;
        contentId = contentId_;
        offerId = offerId_;
    }

    receive() external payable {
        if (mode == 3) revert("refused");
        if (mode == 0 || reentered > 0) return;
        reentered += 1;
        if (mode == 1) {
            try registry.withdraw(account, address(0)) {} catch { reentryFailed = true; }
        } else {
            try registry.buy{value: msg.value}(contentId, offerId, msg.value) {} catch { reentryFailed = true; }
        }
    }
}
