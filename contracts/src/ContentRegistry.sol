// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title StreamGate content registry
/// @notice Records who published a content (by StreamGate content id), where its bytes live
/// on IPFS, its price and the hash of the gate that decides who may watch it; lets the creator
/// (or a registrar acting for them) grant time-limited access to a viewer.
/// @dev Only registrars write entries: StreamGate content ids are public, so an open
/// `register` would let anyone squat or front-run an id with their own CID and gate.
contract ContentRegistry is Ownable {
    struct Entry {
        address creator;
        uint64 registeredAt;
        uint256 price;
        bytes32 gateHash;
        string cid;
    }

    mapping(bytes32 contentId => Entry) private entries;
    mapping(bytes32 contentId => mapping(address viewer => uint64 expiresAt)) public accessExpiry;
    mapping(address account => bool) public isRegistrar;

    /// @dev The CID is not indexed: indexed strings are stored as their hash, and indexers
    /// want the CID itself.
    event ContentRegistered(
        bytes32 indexed contentId, address indexed creator, string cid, uint256 price, bytes32 gateHash
    );
    event AccessGranted(bytes32 indexed contentId, address indexed viewer, uint64 expiresAt);
    event RegistrarSet(address indexed account, bool allowed);

    error AlreadyRegistered(bytes32 contentId);
    error UnknownContent(bytes32 contentId);
    error NotCreator(bytes32 contentId, address caller);
    error NotRegistrar(address caller);
    error EmptyCid();
    error NoCreator();

    constructor() Ownable(msg.sender) {
        isRegistrar[msg.sender] = true;
        emit RegistrarSet(msg.sender, true);
    }

    modifier onlyRegistrar() {
        if (!isRegistrar[msg.sender]) revert NotRegistrar(msg.sender);
        _;
    }

    function setRegistrar(address account, bool allowed) external onlyOwner {
        isRegistrar[account] = allowed;
        emit RegistrarSet(account, allowed);
    }

    function register(bytes32 contentId, address creator, string calldata cid, uint256 price, bytes32 gateHash)
        external
        onlyRegistrar
    {
        if (entries[contentId].creator != address(0)) revert AlreadyRegistered(contentId);
        if (creator == address(0)) revert NoCreator();
        if (bytes(cid).length == 0) revert EmptyCid();
        entries[contentId] = Entry({
            creator: creator,
            registeredAt: uint64(block.timestamp),
            price: price,
            gateHash: gateHash,
            cid: cid
        });
        emit ContentRegistered(contentId, creator, cid, price, gateHash);
    }

    /// @notice The creator, or a registrar acting for them, grants `viewer` access until
    /// `expiresAt` (a unix time; 0 revokes).
    function grantAccess(bytes32 contentId, address viewer, uint64 expiresAt) external {
        address creator = entries[contentId].creator;
        if (creator == address(0)) revert UnknownContent(contentId);
        if (creator != msg.sender && !isRegistrar[msg.sender]) revert NotCreator(contentId, msg.sender);
        accessExpiry[contentId][viewer] = expiresAt;
        emit AccessGranted(contentId, viewer, expiresAt);
    }

    function contentOf(bytes32 contentId)
        external
        view
        returns (address creator, string memory cid, uint256 price, bytes32 gateHash, uint64 registeredAt)
    {
        Entry storage entry = entries[contentId];
        if (entry.creator == address(0)) revert UnknownContent(contentId);
        return (entry.creator, entry.cid, entry.price, entry.gateHash, entry.registeredAt);
    }

    function hasAccess(bytes32 contentId, address viewer) external view returns (bool) {
        return accessExpiry[contentId][viewer] > block.timestamp;
    }
}
