// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Header, PostedHeader, IPbsErrors, IProposerRegistry, IBuilderEscrow} from "./PbsTypes.sol";

/// @title Inbox
/// @notice Accepts batches of proposed L2 headers, settles each header's price from the builder's escrow to the
/// proposer, and slashes equivocating proposers. Its address is the EIP-712 `verifyingContract` of the protocol.
///
/// Batches are all-or-nothing: any invalid item reverts the whole call with that item's error. Relays should
/// simulate (eth_call) first and drop items that fail (e.g. a slot another relay posted meanwhile).
contract Inbox is IPbsErrors, EIP712, ReentrancyGuardTransient {
    bytes32 public constant HEADER_TYPEHASH = keccak256(
        "Header(uint256 l2ChainId,uint64 slot,uint64 number,bytes32 parentHash,uint64 timestampMs,uint64 gasLimit,uint64 gasUsed,bytes32 payloadHash,address builder,address proposer,uint256 value)"
    );
    bytes32 public constant PROPOSAL_TYPEHASH = keccak256("Proposal(uint64 slot,bytes32 headerHash)");

    struct SlotRecord {
        bytes32 headerHash;
        bytes32 bidsRoot;
    }

    struct HeaderRecord {
        bool known;
        uint64 slot;
        uint64 number;
    }

    IProposerRegistry public immutable REGISTRY;
    IBuilderEscrow public immutable ESCROW;
    uint256 public immutable L2_CHAIN_ID;
    uint64 public immutable GENESIS_MS;
    uint64 public immutable SLOT_MS;

    mapping(uint64 => SlotRecord) private _slots;
    mapping(bytes32 => HeaderRecord) private _headers;

    bytes32 private _headHash;
    uint64 private _headNumber;
    uint64 private _lastSlot;
    uint64 private _headerCount;

    event HeaderPosted(
        uint64 indexed slot,
        bytes32 indexed headerHash,
        address indexed proposer,
        address builder,
        uint256 price,
        bytes32 bidsRoot
    );
    event EquivocationReported(
        uint64 indexed slot,
        address indexed proposer,
        address indexed reporter,
        bytes32 headerHashA,
        bytes32 headerHashB,
        uint256 burned
    );

    /// @param registry ProposerRegistry (its GENESIS_MS and SLOT_MS are copied)
    /// @param escrow BuilderEscrow
    /// @param l2ChainId the only `Header.l2ChainId` accepted
    constructor(address registry, address escrow, uint256 l2ChainId) EIP712("PbsMarket", "1") {
        if (registry == address(0) || escrow == address(0)) revert ZeroAddress();
        REGISTRY = IProposerRegistry(registry);
        ESCROW = IBuilderEscrow(escrow);
        L2_CHAIN_ID = l2ChainId;
        GENESIS_MS = IProposerRegistry(registry).GENESIS_MS();
        SLOT_MS = IProposerRegistry(registry).SLOT_MS();
    }

    // ------------------------------------------------------------------ posting

    function postHeaders(PostedHeader[] calldata items) external nonReentrant {
        uint256 n = items.length;
        if (n == 0) revert EmptyBatch();
        uint64 count = _headerCount;
        uint64 lastSlot = _lastSlot;
        bytes32 prevHash; // hash and number of the previous item of this batch (parent fast path)
        uint64 prevNumber;
        uint256 nowMs = block.timestamp * 1000;

        for (uint256 i = 0; i < n; ++i) {
            PostedHeader calldata it = items[i];
            Header calldata h = it.header;
            uint64 slot = h.slot;

            if (h.l2ChainId != L2_CHAIN_ID) revert WrongL2ChainId(L2_CHAIN_ID, h.l2ChainId);
            if (_slots[slot].headerHash != bytes32(0)) revert SlotAlreadyPosted(slot);
            if (count != 0 && slot <= lastSlot) revert SlotNotIncreasing(slot, lastSlot);
            uint256 startMs = uint256(GENESIS_MS) + uint256(slot) * SLOT_MS;
            if (startMs > nowMs + SLOT_MS) revert SlotInFuture(slot);
            if (h.timestampMs != startMs) revert BadTimestamp(uint64(startMs), h.timestampMs);
            if (h.gasUsed > h.gasLimit) revert GasUsedAboveLimit();
            if (it.price > h.value) revert PriceAboveValue();

            // parent: genesis, the previous item, or a stored header
            bytes32 parent = h.parentHash;
            uint64 parentNumber;
            if (parent == bytes32(0)) {
                parentNumber = 0;
            } else if (i != 0 && parent == prevHash) {
                parentNumber = prevNumber;
            } else {
                HeaderRecord storage pr = _headers[parent];
                if (!pr.known) revert UnknownParent(parent);
                parentNumber = pr.number;
            }
            if (h.number != parentNumber + 1) revert BadNumber(parentNumber + 1, h.number);

            if (keccak256(it.payload) != h.payloadHash) revert PayloadHashMismatch();

            bytes32 headerHash = _hashHeader(h);
            address builder = _recover(_hashTypedDataV4(headerHash), it.builderSignature);
            if (builder == address(0) || builder != h.builder) revert BadBuilderSignature();
            address expected = REGISTRY.proposerForSlot(slot);
            if (expected == address(0)) revert NoProposerForSlot(slot);
            if (h.proposer != expected) revert NotScheduledProposer(slot, expected, h.proposer);
            if (_recover(_hashTypedDataV4(_hashProposal(slot, headerHash)), it.proposalSignature) != expected) {
                revert BadProposerSignature();
            }

            // effects
            _slots[slot] = SlotRecord(headerHash, it.bidsRoot);
            _headers[headerHash] = HeaderRecord(true, slot, h.number);
            emit HeaderPosted(slot, headerHash, expected, h.builder, it.price, it.bidsRoot);
            prevHash = headerHash;
            prevNumber = h.number;
            lastSlot = slot;
            unchecked {
                ++count;
            }

            // interaction with our own escrow (credits the proposer's earnings; sends no ether)
            if (it.price != 0) ESCROW.settle(h.builder, expected, it.price);
        }

        _headHash = prevHash;
        _headNumber = prevNumber;
        _lastSlot = lastSlot;
        _headerCount = count;
    }

    // ------------------------------------------------------------------ equivocation

    /// @notice Two Proposal signatures of the slot's scheduled proposer over different header hashes:
    /// burns that proposer's whole bond (once per proposer) and removes it from future sets.
    function reportEquivocation(
        uint64 slot,
        bytes32 headerHashA,
        bytes calldata sigA,
        bytes32 headerHashB,
        bytes calldata sigB
    ) external nonReentrant returns (uint256 burned) {
        if (headerHashA == headerHashB) revert SameHeaderHash();
        address a = _recover(_hashTypedDataV4(_hashProposal(slot, headerHashA)), sigA);
        address b = _recover(_hashTypedDataV4(_hashProposal(slot, headerHashB)), sigB);
        if (a == address(0) || b == address(0)) revert BadProposerSignature();
        if (a != b) revert DifferentSigners(a, b);
        address expected = REGISTRY.proposerForSlot(slot);
        if (expected == address(0)) revert NoProposerForSlot(slot);
        if (a != expected) revert NotScheduledProposer(slot, expected, a);
        burned = REGISTRY.slash(a, msg.sender);
        emit EquivocationReported(slot, a, msg.sender, headerHashA, headerHashB, burned);
    }

    // ------------------------------------------------------------------ views

    function headerOfSlot(uint64 slot) external view returns (bytes32) {
        return _slots[slot].headerHash;
    }

    function bidsRootOfSlot(uint64 slot) external view returns (bytes32) {
        return _slots[slot].bidsRoot;
    }

    function headerInfo(bytes32 headerHash) external view returns (bool known, uint64 slot, uint64 number) {
        HeaderRecord storage r = _headers[headerHash];
        return (r.known, r.slot, r.number);
    }

    /// @notice Slot of the last posted header; 0 when none (check `headerCount()`).
    function lastPostedSlot() external view returns (uint64) {
        return _lastSlot;
    }

    function headerCount() external view returns (uint64) {
        return _headerCount;
    }

    /// @notice Last posted header (hash, number); (0x00.., 0) = genesis before any post.
    function head() external view returns (bytes32 headerHash, uint64 number) {
        return (_headHash, _headNumber);
    }

    function currentSlot() external view returns (uint64) {
        uint256 nowMs = block.timestamp * 1000;
        if (nowMs < GENESIS_MS) return 0;
        return uint64((nowMs - GENESIS_MS) / SLOT_MS);
    }

    function slotStartMs(uint64 slot) external view returns (uint256) {
        return uint256(GENESIS_MS) + uint256(slot) * SLOT_MS;
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice hashStruct(Header) = the L2 block hash.
    function hashHeader(Header calldata h) external pure returns (bytes32) {
        return _hashHeader(h);
    }

    /// @notice hashStruct(Proposal(slot, headerHash)).
    function hashProposal(uint64 slot, bytes32 headerHash) external pure returns (bytes32) {
        return _hashProposal(slot, headerHash);
    }

    /// @notice The digest the builder signs: keccak256("\x19\x01" || domainSeparator || hashHeader(h)).
    function headerDigest(Header calldata h) external view returns (bytes32) {
        return _hashTypedDataV4(_hashHeader(h));
    }

    /// @notice The digest the proposer signs for Proposal(slot, headerHash).
    function proposalDigest(uint64 slot, bytes32 headerHash) external view returns (bytes32) {
        return _hashTypedDataV4(_hashProposal(slot, headerHash));
    }

    /// @notice Signature recovery exactly as postHeaders applies it (v in {0,1,27,28}, low s); address(0) if invalid.
    function recoverSigner(bytes32 digest, bytes calldata signature) external pure returns (address) {
        return _recover(digest, signature);
    }

    // ------------------------------------------------------------------ internals

    function _hashHeader(Header calldata h) private pure returns (bytes32) {
        return keccak256(abi.encode(HEADER_TYPEHASH, h));
    }

    function _hashProposal(uint64 slot, bytes32 headerHash) private pure returns (bytes32) {
        return keccak256(abi.encode(PROPOSAL_TYPEHASH, slot, headerHash));
    }

    /// @dev 65-byte r||s||v, v in {27,28} or {0,1}; rejects high s. Returns address(0) on any failure.
    function _recover(bytes32 digest, bytes calldata sig) private pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 32))
            v := byte(0, calldataload(add(sig.offset, 64)))
        }
        if (v < 27) v += 27;
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err != ECDSA.RecoverError.NoError) return address(0);
        return signer;
    }
}
