// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice EIP-712 `Header` as defined in the PbsMarket wire protocol (docs/contracts.md, shared/protocol.md).
/// Field order and types are part of the type hash; do not reorder. Unchanged in protocol version 2.
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

/// @notice EIP-712 `Proposal` of protocol version 2: what the proposer signs (the header and the settlement it
/// accepted). For the proposer's own block (no auction): price 0, bidsRoot 0x00.., relay address(0).
struct Proposal {
    uint64 slot;
    bytes32 headerHash;
    uint256 price;
    bytes32 bidsRoot;
    address relay;
}

/// @notice EIP-712 `AuctionResult` (unchanged type; checked on L1 in version 2): what the auctioning relay signs.
struct AuctionResult {
    uint64 slot;
    bytes32 headerHash;
    uint256 price;
    bytes32 bidsRoot;
    uint32 bidCount;
}

/// @notice Evidence of the runner-up bid (second price above the reserve). L1 rebuilds the runner-up's `Header` from
/// the winner's l2ChainId, slot, number, parentHash, timestampMs, proposer, these fields, and value = price.
struct RunnerUp {
    uint64 gasLimit;
    uint64 gasUsed;
    bytes32 payloadHash;
    address builder;
    uint64 receivedAtMs; // from the runner-up's BidReceipt: the leaf is [runnerUpHeaderHash, receivedAtMs]
    bytes builderSignature; // 65 bytes r||s||v over the EIP-712 digest of the rebuilt runner-up Header
    bytes32[] proof; // OpenZeppelin MerkleProof of the leaf in bidsRoot
}

/// @notice One item of `Inbox.postHeaders` (protocol version 2). Item order is part of the ABI.
struct PostedHeader {
    Header header;
    bytes builderSignature; // 65 bytes r||s||v over the EIP-712 digest of `header`
    bytes proposalSignature; // 65 bytes over the EIP-712 digest of Proposal(slot, headerHash, price, bidsRoot, relay)
    bytes payload; // RLP list of raw L2 txs; keccak256(payload) must equal header.payloadHash
    uint256 price; // wei moved from the builder's collateral at `relay` to the proposer
    bytes32 bidsRoot; // relay's Merkle root over the slot's accepted bids (0x00.. when none)
    uint32 bidCount; // as in the relay's AuctionResult
    bytes relaySignature; // 65 bytes over AuctionResult(slot, headerHash, price, bidsRoot, bidCount); empty = own block
    RunnerUp[] runnerUp; // 0 or 1 entries; 1 only under the second-price rule
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
    // --- proposer registry
    error BondTooSmall(uint256 sent, uint256 minBond);
    error AlreadyRegistered(address who);
    error NotActive(address proposer);
    error NotExiting(address proposer);
    error ExitDelayNotOver(uint256 withdrawableAt);
    error SetFull();
    error AlreadySlashed(address proposer);
    error NotBonded(address proposer);
    error EpochOutOfRange(uint256 epoch);
    error NotInSeedWindow(uint64 slot);
    error SeedAlreadyRecorded(uint64 epoch);
    // --- escrow
    error ZeroAmount();
    error AmountExceedsBalance(uint256 requested, uint256 available);
    error NoPendingWithdrawal();
    error WithdrawalNotReady(uint256 readyAt);
    error NothingToClaim();
    error NoShortfall(address builder, address proposer);
    error AmountExceedsShortfall(uint256 sent, uint256 owed);
    // --- relay registry (in the inbox)
    error RelayNotActive(address relay);
    error RelayNotExiting(address relay);
    error RelayAlreadySlashed(address relay);
    error BadRelaySignature();
    error SameAuctionResult();
    // --- inbox: posting
    error EmptyBatch();
    error WrongL2ChainId(uint256 expected, uint256 got);
    error SlotNotStarted(uint64 slot);
    error BadTimestamp(uint64 expected, uint64 got);
    error GasUsedAboveLimit();
    error NotOnHead(bytes32 headHash, uint64 headNumber, bytes32 parentHash, uint64 number);
    error PayloadHashMismatch();
    error BadBuilderSignature();
    error NoProposerForSlot(uint64 slot);
    error NotScheduledProposer(uint64 slot, address expected, address got);
    error MissingAuctionResult();
    error UnknownRelay(address relay);
    error WrongPrice(uint256 expected, uint256 got);
    error UnexpectedRunnerUp();
    error RunnerUpSameBuilder(address builder);
    error BadRunnerUpSignature();
    error RunnerUpNotInBidsRoot();
    error BadProposerSignature();
    // --- inbox: equivocation
    error DifferentSlots(uint64 slotA, uint64 slotB);
    error SameProposal();
    error DifferentSigners(address signerA, address signerB);
}

interface IProposerRegistry {
    function proposerForSlot(uint64 slot) external view returns (address);
    function proposersForSlots(uint64[] calldata slots) external view returns (address[] memory);
    function drawnProposerForSlot(uint64 slot) external view returns (address);
    function slash(address proposer, address reporter) external returns (uint256 amount);
    function GENESIS_MS() external view returns (uint64);
    function SLOT_MS() external view returns (uint64);
}

/// @notice One settlement of a posted header: `price` from `builder`'s collateral at `relay` to `proposer`.
struct Settlement {
    address builder;
    address relay;
    address proposer;
    uint256 price;
}

interface IBuilderEscrow {
    function settleBatch(Settlement[] calldata settlements) external;
}
