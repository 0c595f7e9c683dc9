// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice EIP-712 `Header` as defined in the PbsMarket wire protocol (docs/contracts.md, shared/protocol.md).
/// Field order and types are part of the type hash; do not reorder.
struct Header {
    uint256 l2ChainId;
    uint64 slot;
    uint64 number;
    bytes32 parentHash;
    uint64 timestampMs;
    uint64 gasLimit;
    uint64 gasUsed;
    bytes32 payloadHash;
    address builder;
    address proposer;
    uint256 value;
}

/// @notice One item of `Inbox.postHeaders`.
struct PostedHeader {
    Header header;
    bytes builderSignature; // 65 bytes r||s||v over the EIP-712 digest of `header`
    bytes proposalSignature; // 65 bytes r||s||v over the EIP-712 digest of Proposal(slot, headerHash)
    bytes payload; // RLP list of raw L2 txs; keccak256(payload) must equal header.payloadHash
    uint256 price; // wei moved from the builder's escrow to the proposer; <= header.value
    bytes32 bidsRoot; // relay's Merkle root over the slot's accepted bids (0x00.. when none)
}

/// @notice Every refusal of the PbsMarket L1 contracts. All three contracts inherit this so that each ABI
/// can decode any revert bubbling through the Inbox.
interface IPbsErrors {
    // --- access / wiring
    error NotDeployer();
    error NotInbox();
    error InboxAlreadySet();
    error ZeroAddress();
    error BadConfig();
    error TransferFailed();
    // --- registry
    error BondTooSmall(uint256 sent, uint256 minBond);
    error AlreadyRegistered(address proposer);
    error NotActive(address proposer);
    error NotExiting(address proposer);
    error ExitDelayNotOver(uint256 withdrawableAt);
    error SetFull();
    error AlreadySlashed(address proposer);
    error NotBonded(address proposer);
    error EpochOutOfRange(uint256 epoch);
    // --- escrow
    error ZeroAmount();
    error AmountExceedsBalance(uint256 requested, uint256 available);
    error NoPendingWithdrawal();
    error WithdrawalNotReady(uint256 readyAt);
    error InsufficientEscrow(address builder, uint256 needed, uint256 held);
    error NothingToClaim();
    // --- inbox
    error EmptyBatch();
    error WrongL2ChainId(uint256 expected, uint256 got);
    error SlotAlreadyPosted(uint64 slot);
    error SlotNotIncreasing(uint64 slot, uint64 lastPostedSlot);
    error SlotInFuture(uint64 slot);
    error BadTimestamp(uint64 expected, uint64 got);
    error GasUsedAboveLimit();
    error PriceAboveValue();
    error UnknownParent(bytes32 parentHash);
    error BadNumber(uint64 expected, uint64 got);
    error PayloadHashMismatch();
    error BadBuilderSignature();
    error BadProposerSignature();
    error NoProposerForSlot(uint64 slot);
    error NotScheduledProposer(uint64 slot, address expected, address got);
    error SameHeaderHash();
    error DifferentSigners(address signerA, address signerB);
}

interface IProposerRegistry {
    function proposerForSlot(uint64 slot) external view returns (address);
    function slash(address proposer, address reporter) external returns (uint256 amount);
    function GENESIS_MS() external view returns (uint64);
    function SLOT_MS() external view returns (uint64);
}

interface IBuilderEscrow {
    function settle(address builder, address to, uint256 amount) external;
}
