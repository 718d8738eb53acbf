// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title StreamGate content registry and access market
/// @notice Records who published a content (by StreamGate content id), where its bytes live on
/// IPFS and the hash of the gate that decides who may watch it; sells access to it.
///
/// A content's creator publishes offers (a purchase for ever, a rental of N seconds, or a
/// time-limited membership of all the creator's content) priced in the native coin or an
/// ERC-20. The creator signs them as EIP-712 typed data (an EOA's ECDSA signature or an ERC-1271
/// contract wallet's), so anyone may relay them (the creator pays no gas) and nobody else can
/// change a price. Buying records access until an expiry and credits the creator, minus the
/// platform fee (basis points, capped at MAX_FEE_BPS), credited to the treasury; proceeds leave
/// only by `withdraw`, to the payout address the creator signed for (pull payments). The owner
/// names registrars, the fee and the treasury, and has no power over anyone's balance.
/// @dev Only registrars write entries: StreamGate content ids are public, so an open
/// `register` would let anyone squat or front-run an id with their own CID and gate.
contract ContentRegistry is Ownable, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    struct Entry {
        address creator;
        uint64 registeredAt;
        uint256 price;
        bytes32 gateHash;
        string cid;
    }

    /// @notice What a creator signs for each offer. `kind` 0 is access to the content (a purchase
    /// when `period` is 0, a rental of `period` seconds otherwise), 1 a membership of `period`
    /// seconds to all the creator's content. `token` 0 is the native coin.
    struct OfferTerms {
        uint8 kind;
        address token;
        uint256 amount;
        uint64 period;
    }

    /// @dev Two storage slots: a purchase reads both and nothing else of the offer.
    struct Offer {
        address token;
        uint64 period;
        uint8 kind;
        uint256 amount;
    }

    uint8 public constant KIND_ACCESS = 0;
    uint8 public constant KIND_MEMBERSHIP = 1;
    uint16 public constant MAX_FEE_BPS = 1_000; // 10 %
    uint256 public constant MAX_OFFERS = 8;
    uint64 public constant MAX_PERIOD = 100 * 365 days;
    uint64 public constant FOREVER = type(uint64).max;

    bytes32 public constant OFFER_TYPEHASH =
        keccak256("OfferTerms(uint8 kind,address token,uint256 amount,uint64 period)");
    bytes32 public constant SET_OFFERS_TYPEHASH = keccak256(
        "SetOffers(bytes32 contentId,OfferTerms[] offers,uint256 nonce,uint256 deadline)"
        "OfferTerms(uint8 kind,address token,uint256 amount,uint64 period)"
    );
    bytes32 public constant SET_PAYOUT_TYPEHASH =
        keccak256("SetPayout(address creator,address payout,uint256 nonce,uint256 deadline)");

    // Read together by every purchase: one slot.
    uint16 public feeBps;
    address public treasury;

    uint256 public nextOfferId = 1;

    mapping(bytes32 contentId => Entry) private entries;
    /// @notice Access bought (a purchase or rentals): nobody, owner, registrar or creator, can
    /// shorten it.
    mapping(bytes32 contentId => mapping(address viewer => uint64 expiresAt)) public accessExpiry;
    /// @notice Access given by the creator or a registrar (`grantAccess`), kept apart from what
    /// was bought so that revoking a grant never takes a purchase away.
    mapping(bytes32 contentId => mapping(address viewer => uint64 expiresAt)) public grantExpiry;
    mapping(address creator => mapping(address member => uint64 expiresAt)) public membershipExpiry;
    mapping(address account => bool) public isRegistrar;
    mapping(bytes32 contentId => mapping(uint256 offerId => Offer)) private offers;
    mapping(bytes32 contentId => uint256[]) private offerIds;
    mapping(address creator => address) private payouts;
    /// @dev What `account` may withdraw in `token` (0: the native coin), plus 1 once the slot
    /// is in use: a slot never returns to zero, so a sale only ever changes a non-zero slot
    /// (5,000 gas, not 22,100). `setOffers` (paid by the relayer, not a buyer) puts the 1 in
    /// the creator's and the treasury's slots of each offer's currency; `balanceOf` and
    /// `withdraw` never count it, and no coin backs it.
    mapping(address account => mapping(address token => uint256)) private credits;

    /// @dev The CID is not indexed: indexed strings are stored as their hash, and indexers
    /// want the CID itself.
    event ContentRegistered(
        bytes32 indexed contentId, address indexed creator, string cid, uint256 price, bytes32 gateHash
    );
    event AccessGranted(bytes32 indexed contentId, address indexed viewer, uint64 expiresAt);
    event RegistrarSet(address indexed account, bool allowed);
    /// @notice A content's offers were replaced by `count` offers with ids `firstOfferId`,
    /// `firstOfferId + 1`, … in the order signed (an empty set withdraws them all).
    event OffersSet(
        bytes32 indexed contentId, address indexed creator, uint256 nonce, uint256 firstOfferId, uint256 count
    );
    event OfferPublished(
        bytes32 indexed contentId, uint256 indexed offerId, uint8 kind, address token, uint256 amount, uint64 period
    );
    event AccessPurchased(
        bytes32 indexed contentId,
        address indexed buyer,
        uint256 indexed offerId,
        uint8 kind,
        address token,
        uint256 amount,
        uint256 fee,
        uint64 expiresAt
    );
    event PayoutSet(address indexed creator, address payout, uint256 nonce);
    event Withdrawn(address indexed account, address indexed token, address to, uint256 amount);
    event FeeSet(uint16 feeBps);
    event TreasurySet(address treasury);

    error AlreadyRegistered(bytes32 contentId);
    error UnknownContent(bytes32 contentId);
    error NotCreator(bytes32 contentId, address caller);
    error NotRegistrar(address caller);
    error EmptyCid();
    error NoCreator();
    error SignatureExpired(uint256 deadline);
    error BadSignature(address signer);
    error TooManyOffers(uint256 count);
    error InvalidOffer(uint256 index);
    error UnknownOffer(bytes32 contentId, uint256 offerId);
    error PriceChanged(uint256 expected, uint256 price);
    error WrongAmount(uint256 sent, uint256 price);
    error FeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    error ZeroAddress();
    error NothingToWithdraw(address account, address token);
    error TransferFailed(address to, uint256 amount);
    error AlreadyOwned(bytes32 contentId, address buyer);
    error UnsupportedToken(address token, uint256 asked, uint256 received);

    constructor() Ownable(msg.sender) EIP712("StreamGate ContentRegistry", "1") {
        isRegistrar[msg.sender] = true;
        treasury = msg.sender;
        emit RegistrarSet(msg.sender, true);
        emit TreasurySet(msg.sender);
    }

    modifier onlyRegistrar() {
        if (!isRegistrar[msg.sender]) revert NotRegistrar(msg.sender);
        _;
    }

    // --- the owner -------------------------------------------------------------------------------

    function setRegistrar(address account, bool allowed) external onlyOwner {
        isRegistrar[account] = allowed;
        emit RegistrarSet(account, allowed);
    }

    /// @notice The platform fee on future purchases, at most MAX_FEE_BPS.
    function setFee(uint16 newFeeBps) external onlyOwner {
        if (newFeeBps > MAX_FEE_BPS) revert FeeTooHigh(newFeeBps, MAX_FEE_BPS);
        feeBps = newFeeBps;
        emit FeeSet(newFeeBps);
    }

    /// @notice Where future fees are credited (fees credited already stay with the old treasury).
    function setTreasury(address newTreasury) external onlyOwner {
        if (newTreasury == address(0)) revert ZeroAddress();
        treasury = newTreasury;
        emit TreasurySet(newTreasury);
    }

    // --- registering -----------------------------------------------------------------------------

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
    /// `expiresAt` (a unix time; 0 revokes the grant, never a purchase).
    function grantAccess(bytes32 contentId, address viewer, uint64 expiresAt) external {
        address creator = entries[contentId].creator;
        if (creator == address(0)) revert UnknownContent(contentId);
        if (creator != msg.sender && !isRegistrar[msg.sender]) revert NotCreator(contentId, msg.sender);
        grantExpiry[contentId][viewer] = expiresAt;
        emit AccessGranted(contentId, viewer, expiresAt);
    }

    // --- the creator's consent -------------------------------------------------------------------

    /// @notice Replace the offers of `contentId` with `terms`, as its creator signed them.
    function setOffers(
        bytes32 contentId,
        OfferTerms[] calldata terms,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        address creator = entries[contentId].creator;
        if (creator == address(0)) revert UnknownContent(contentId);
        if (terms.length > MAX_OFFERS) revert TooManyOffers(terms.length);
        bytes32 structHash =
            keccak256(abi.encode(SET_OFFERS_TYPEHASH, contentId, _termsHash(terms), nonce, deadline));
        _consent(creator, structHash, nonce, deadline, signature);

        uint256[] storage ids = offerIds[contentId];
        for (uint256 i = 0; i < ids.length; i++) {
            delete offers[contentId][ids[i]];
        }
        delete offerIds[contentId];
        uint256 first = nextOfferId;
        for (uint256 i = 0; i < terms.length; i++) {
            _publish(contentId, first + i, terms[i], i);
        }
        nextOfferId = first + terms.length;
        emit OffersSet(contentId, creator, nonce, first, terms.length);
    }

    function _termsHash(OfferTerms[] calldata terms) private pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](terms.length);
        for (uint256 i = 0; i < terms.length; i++) {
            OfferTerms calldata offer = terms[i];
            hashes[i] = keccak256(abi.encode(OFFER_TYPEHASH, offer.kind, offer.token, offer.amount, offer.period));
        }
        return keccak256(abi.encodePacked(hashes));
    }

    function _publish(bytes32 contentId, uint256 offerId, OfferTerms calldata offer, uint256 index) private {
        bool isAccess = offer.kind == KIND_ACCESS;
        if (
            offer.amount == 0 || offer.period > MAX_PERIOD || (!isAccess && offer.kind != KIND_MEMBERSHIP)
                || (!isAccess && offer.period == 0)
        ) revert InvalidOffer(index);
        offers[contentId][offerId] =
            Offer({token: offer.token, period: offer.period, kind: offer.kind, amount: offer.amount});
        _reserve(entries[contentId].creator, offer.token);
        _reserve(treasury, offer.token);
        offerIds[contentId].push(offerId);
        emit OfferPublished(contentId, offerId, offer.kind, offer.token, offer.amount, offer.period);
    }

    /// @notice Send `creator`'s proceeds to `payout` from now on, as the creator signed it.
    function setPayout(address creator, address payout, uint256 nonce, uint256 deadline, bytes calldata signature)
        external
    {
        if (payout == address(0) || creator == address(0)) revert ZeroAddress();
        _consent(creator, keccak256(abi.encode(SET_PAYOUT_TYPEHASH, creator, payout, nonce, deadline)), nonce, deadline, signature);
        payouts[creator] = payout;
        emit PayoutSet(creator, payout, nonce);
    }

    function _consent(address creator, bytes32 structHash, uint256 nonce, uint256 deadline, bytes calldata signature)
        private
    {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        if (!SignatureChecker.isValidSignatureNow(creator, _hashTypedDataV4(structHash), signature)) {
            revert BadSignature(creator);
        }
        _useCheckedNonce(creator, nonce); // a signature is good once
    }

    // --- buying ----------------------------------------------------------------------------------

    /// @notice Buy offer `offerId` of `contentId`, paying `price` (which must be the offer's
    /// amount: a buyer never pays more than they saw). Native offers take it as `msg.value`,
    /// ERC-20 ones by `transferFrom` (approve first, or use `buyWithPermit`).
    function buy(bytes32 contentId, uint256 offerId, uint256 price)
        external
        payable
        nonReentrant
        returns (uint64 expiresAt)
    {
        return _buy(contentId, offerId, price);
    }

    /// @notice `buy` for an ERC-20 with EIP-2612 permit, approving in the same transaction.
    /// @dev A permit that fails (already used by a front-runner) is ignored: the allowance it
    /// gave is what `transferFrom` then needs.
    function buyWithPermit(
        bytes32 contentId,
        uint256 offerId,
        uint256 price,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint64 expiresAt) {
        address token = offers[contentId][offerId].token;
        if (token != address(0)) {
            try IERC20Permit(token).permit(msg.sender, address(this), price, deadline, v, r, s) {} catch {}
        }
        return _buy(contentId, offerId, price);
    }

    function _buy(bytes32 contentId, uint256 offerId, uint256 price) private returns (uint64 expiresAt) {
        Offer memory offer = offers[contentId][offerId];
        if (offer.amount == 0) revert UnknownOffer(contentId, offerId);
        if (price != offer.amount) revert PriceChanged(price, offer.amount);
        if (msg.value != (offer.token == address(0) ? offer.amount : 0)) revert WrongAmount(msg.value, offer.amount);
        address creator = entries[contentId].creator;

        // Effects first: access and credits are recorded before any token is moved.
        uint64 start = uint64(block.timestamp);
        if (offer.kind == KIND_ACCESS) {
            uint64 current = accessExpiry[contentId][msg.sender];
            if (current == FOREVER) revert AlreadyOwned(contentId, msg.sender);
            expiresAt = offer.period == 0 ? FOREVER : _extend(current, start, offer.period);
            accessExpiry[contentId][msg.sender] = expiresAt;
        } else {
            expiresAt = _extend(membershipExpiry[creator][msg.sender], start, offer.period);
            membershipExpiry[creator][msg.sender] = expiresAt;
        }
        uint16 bps = feeBps;
        uint256 fee = offer.amount * bps / 10_000;
        credits[creator][offer.token] += _unused(creator, offer.token) + offer.amount - fee;
        if (fee != 0) credits[treasury][offer.token] += _unused(treasury, offer.token) + fee;
        emit AccessPurchased(contentId, msg.sender, offerId, offer.kind, offer.token, offer.amount, fee, expiresAt);

        if (offer.token != address(0)) {
            // Credits must be backed: a token that delivers less than it was asked to move (a
            // fee on transfer, a rebasing or lying token) would let one creator's withdrawal
            // take another's money.
            IERC20 token = IERC20(offer.token);
            uint256 before = token.balanceOf(address(this));
            token.safeTransferFrom(msg.sender, address(this), offer.amount);
            uint256 received = token.balanceOf(address(this)) - before;
            if (received != offer.amount) revert UnsupportedToken(offer.token, offer.amount, received);
        }
    }

    /// @dev 1 when the slot is not in use yet (a sale to a slot `setOffers` did not reserve,
    /// such as a new treasury's), so that the stored credit is always the amount plus 1.
    function _unused(address account, address token) private view returns (uint256) {
        return credits[account][token] == 0 ? 1 : 0;
    }

    function _reserve(address account, address token) private {
        if (credits[account][token] == 0) credits[account][token] = 1;
    }

    function _extend(uint64 current, uint64 start, uint64 period) private pure returns (uint64) {
        return (current > start ? current : start) + period;
    }

    // --- proceeds --------------------------------------------------------------------------------

    /// @notice Send `account`'s whole balance in `token` to its payout address. Anyone may call
    /// it: the money can only go where its owner said.
    function withdraw(address account, address token) external nonReentrant returns (uint256 amount) {
        uint256 credit = credits[account][token];
        if (credit <= 1) revert NothingToWithdraw(account, token);
        amount = credit - 1;
        credits[account][token] = 1;
        address to = payoutOf(account);
        emit Withdrawn(account, token, to, amount);
        if (token == address(0)) {
            (bool sent,) = to.call{value: amount}("");
            if (!sent) revert TransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    // --- reading ---------------------------------------------------------------------------------

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
        return _accessUntil(contentId, viewer) > block.timestamp;
    }

    function _accessUntil(bytes32 contentId, address viewer) private view returns (uint64) {
        uint64 bought = accessExpiry[contentId][viewer];
        uint64 granted = grantExpiry[contentId][viewer];
        return bought > granted ? bought : granted;
    }

    /// @notice Until when `viewer` may watch `contentId` by a purchase, rental or grant of it, and by a
    /// membership of its creator (0: never), with the chain's time now: one call answers both
    /// kinds of gate condition and how long the answer stays true.
    function accessUntil(bytes32 contentId, address viewer)
        external
        view
        returns (uint64 purchased, uint64 membership, uint64 chainTime)
    {
        address creator = entries[contentId].creator;
        membership = creator == address(0) ? 0 : membershipExpiry[creator][viewer];
        return (_accessUntil(contentId, viewer), membership, uint64(block.timestamp));
    }

    function offerOf(bytes32 contentId, uint256 offerId) external view returns (Offer memory) {
        Offer memory offer = offers[contentId][offerId];
        if (offer.amount == 0) revert UnknownOffer(contentId, offerId);
        return offer;
    }

    function offerIdsOf(bytes32 contentId) external view returns (uint256[] memory) {
        return offerIds[contentId];
    }

    /// @notice What `account` may withdraw in `token` (0: the native coin).
    function balanceOf(address account, address token) external view returns (uint256) {
        uint256 credit = credits[account][token];
        return credit == 0 ? 0 : credit - 1;
    }

    function payoutOf(address creator) public view returns (address) {
        address payout = payouts[creator];
        return payout == address(0) ? creator : payout;
    }
}
