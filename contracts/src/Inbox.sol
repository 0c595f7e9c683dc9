// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {
    Header,
    Proposal,
    AuctionResult,
    RunnerUp,
    PostedHeader,
    Settlement,
    IPbsErrors,
    IProposerRegistry,
    IBuilderEscrow
} from "./PbsTypes.sol";

/// @title Inbox (protocol version 2)
/// @notice The judge of every rule that moves money or fixes the L2 chain (docs/settlement.md): accepts batches of
/// proposed headers that extend its one head, each with the settlement its proposer signed and a registered,
/// bonded relay's AuctionResult; enforces the price rule with runner-up evidence; settles each header's price from
/// the builder's collateral at that relay to the proposer; holds the relay registry; slashes equivocating
/// proposers and relays. Its address is the EIP-712 `verifyingContract` of the protocol.
///
/// No per-slot storage: head, last posted slot and header count are written once per batch, and the
/// `HeaderPosted` events are the record. Items for slots at or behind the last posted slot are skipped
/// (`HeaderSkipped`); any other invalid item reverts the whole batch with that item's error.
contract Inbox is IPbsErrors, EIP712, ReentrancyGuardTransient {
    bytes32 public constant HEADER_TYPEHASH = keccak256(
        "Header(uint256 l2ChainId,uint64 slot,uint64 number,bytes32 parentHash,uint64 timestampMs,uint64 gasLimit,uint64 gasUsed,bytes32 payloadHash,address builder,address proposer,uint256 value)"
    );
    bytes32 public constant PROPOSAL_TYPEHASH =
        keccak256("Proposal(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,address relay)");
    bytes32 public constant AUCTION_RESULT_TYPEHASH =
        keccak256("AuctionResult(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,uint32 bidCount)");

    /// @notice Document version of the proposer/L1 part of the protocol this inbox implements.
    uint256 public constant PROTOCOL_VERSION = 2;
    uint8 public constant FIRST_PRICE = 0;
    uint8 public constant SECOND_PRICE = 1;

    enum RelayStatus {
        None, // never registered, or bond withdrawn (may register again)
        Active, // registered and bonded: its AuctionResults are accepted
        Exiting, // no longer accepted; bond locked (still slashable) until withdrawableAt
        Slashed // bond burned; may never register again
    }

    struct Relay {
        uint96 bond;
        RelayStatus status;
        uint64 withdrawableAt;
    }

    IProposerRegistry public immutable REGISTRY;
    IBuilderEscrow public immutable ESCROW;
    uint256 public immutable L2_CHAIN_ID;
    uint64 public immutable GENESIS_MS;
    uint64 public immutable SLOT_MS;
    /// @notice FIRST_PRICE (0): price = value; SECOND_PRICE (1): price = runner-up's value, or the reserve.
    uint8 public immutable PRICE_RULE;
    /// @notice Lowest accepted value of an auctioned header (wei); also the second price when no runner-up.
    uint256 public immutable RESERVE_PRICE;
    uint256 public immutable MIN_RELAY_BOND;
    /// @notice Seconds a relay's bond stays locked (slashable) after requestRelayExit.
    uint64 public immutable RELAY_EXIT_DELAY;

    // one slot each: written once per batch
    bytes32 private _headHash;
    uint64 private _headNumber;
    uint64 private _lastSlot;
    uint64 private _headerCount;

    mapping(address => Relay) private _relays;
    uint256 public totalRelayBurned;

    event HeaderPosted(
        uint64 indexed slot,
        bytes32 indexed headerHash,
        address indexed proposer,
        address builder,
        address relay,
        uint256 price,
        bytes32 bidsRoot,
        bytes proposalSignature
    );
    event HeaderSkipped(uint64 indexed slot, bytes32 indexed headerHash);
    event EquivocationReported(
        uint64 indexed slot,
        address indexed proposer,
        address indexed reporter,
        bytes32 proposalHashA,
        bytes32 proposalHashB,
        uint256 burned
    );
    event RelayRegistered(address indexed relay, uint256 bond);
    event RelayExitRequested(address indexed relay, uint64 withdrawableAt);
    event RelayBondWithdrawn(address indexed relay, uint256 amount);
    event RelayEquivocationReported(
        uint64 indexed slot,
        address indexed relay,
        address indexed reporter,
        bytes32 resultHashA,
        bytes32 resultHashB,
        uint256 burned
    );

    /// @dev batch-local copy of the head
    struct Cursor {
        bytes32 headHash;
        uint64 headNumber;
        uint64 lastSlot;
        uint64 count;
        uint256 nowMs;
    }

    /// @param registry ProposerRegistry (its GENESIS_MS and SLOT_MS are copied)
    /// @param escrow BuilderEscrow
    /// @param l2ChainId the only `Header.l2ChainId` accepted
    /// @param priceRule FIRST_PRICE (0) or SECOND_PRICE (1)
    /// @param reservePrice lowest accepted value (wei) of an auctioned header
    /// @param minRelayBond bond (wei, > 0) a relay must lock to have its AuctionResults accepted
    /// @param relayExitDelay seconds a relay's bond stays slashable after it asks to leave
    constructor(
        address registry,
        address escrow,
        uint256 l2ChainId,
        uint8 priceRule,
        uint256 reservePrice,
        uint256 minRelayBond,
        uint64 relayExitDelay
    ) EIP712("PbsMarket", "1") {
        if (registry == address(0) || escrow == address(0)) revert ZeroAddress();
        if (priceRule > SECOND_PRICE || minRelayBond == 0 || minRelayBond > type(uint96).max) revert BadConfig();
        REGISTRY = IProposerRegistry(registry);
        ESCROW = IBuilderEscrow(escrow);
        L2_CHAIN_ID = l2ChainId;
        GENESIS_MS = IProposerRegistry(registry).GENESIS_MS();
        SLOT_MS = IProposerRegistry(registry).SLOT_MS();
        PRICE_RULE = priceRule;
        RESERVE_PRICE = reservePrice;
        MIN_RELAY_BOND = minRelayBond;
        RELAY_EXIT_DELAY = relayExitDelay;
    }

    // ------------------------------------------------------------------ posting

    /// @notice Posts proposed headers in slot order; each must extend the head (or the previous item).
    /// The checks per item, in order, are in docs/settlement.md ("What L1 checks for each posted item").
    function postHeaders(PostedHeader[] calldata items) external nonReentrant {
        uint256 n = items.length;
        if (n == 0) revert EmptyBatch();
        // the schedule of every item in one registry call (a view; the checks below keep their order)
        uint64[] memory slots = new uint64[](n);
        for (uint256 i = 0; i < n; ++i) {
            slots[i] = items[i].header.slot;
        }
        address[] memory scheduled = REGISTRY.proposersForSlots(slots);
        Settlement[] memory settlements = new Settlement[](n);
        uint256 nSettle;
        uint64 count0 = _headerCount;
        Cursor memory c = Cursor(_headHash, _headNumber, _lastSlot, count0, block.timestamp * 1000);

        for (uint256 i = 0; i < n; ++i) {
            PostedHeader calldata it = items[i];
            Header calldata h = it.header;
            // 1. chain id
            if (h.l2ChainId != L2_CHAIN_ID) revert WrongL2ChainId(L2_CHAIN_ID, h.l2ChainId);
            // 2. behind the head: skipped
            uint64 slot = h.slot;
            if (c.count != 0 && slot <= c.lastSlot) {
                emit HeaderSkipped(slot, _hashHeader(h));
                continue;
            }
            address relay = _post(it, h, c, scheduled[i]);
            uint256 price = it.price;
            if (price != 0) {
                Settlement memory st = settlements[nSettle++];
                st.builder = h.builder;
                st.relay = relay;
                st.proposer = h.proposer;
                st.price = price;
            }
        }

        if (c.count != count0) {
            _headHash = c.headHash;
            _headNumber = c.headNumber;
            _lastSlot = c.lastSlot;
            _headerCount = c.count;
        }
        // 11. settle, in item order, in one call to our own escrow (never reverts for lack of money; no ether moves)
        if (nSettle != 0) {
            assembly ("memory-safe") {
                mstore(settlements, nSettle)
            }
            ESCROW.settleBatch(settlements);
        }
    }

    /// @dev Steps 3 to 10 and the item's effects on the cursor; returns the relay of the settlement.
    function _post(PostedHeader calldata it, Header calldata h, Cursor memory c, address proposer)
        private
        returns (address relay)
    {
        uint64 slot = h.slot;
        // 3. started
        uint256 startMs = uint256(GENESIS_MS) + uint256(slot) * SLOT_MS;
        if (startMs > c.nowMs) revert SlotNotStarted(slot);
        // 4. timestamp, gas
        if (h.timestampMs != startMs) revert BadTimestamp(uint64(startMs), h.timestampMs);
        if (h.gasUsed > h.gasLimit) revert GasUsedAboveLimit();
        // 5. linear chain
        if (h.parentHash != c.headHash || h.number != c.headNumber + 1) {
            revert NotOnHead(c.headHash, c.headNumber, h.parentHash, h.number);
        }
        // 6. payload, builder signature
        if (keccak256(it.payload) != h.payloadHash) revert PayloadHashMismatch();
        bytes32 headerHash = _hashHeader(h);
        address builder = h.builder;
        if (builder == address(0) || _recover(_hashTypedDataV4(headerHash), it.builderSignature) != builder) {
            revert BadBuilderSignature();
        }
        // 7. schedule (proposer = REGISTRY.proposerForSlot(slot))
        if (proposer == address(0)) revert NoProposerForSlot(slot);
        if (h.proposer != proposer) revert NotScheduledProposer(slot, proposer, h.proposer);
        // 8., 9. settlement authenticated, price rule, runner-up evidence
        relay = _checkSettlement(it, h, headerHash);
        // 10. proposal
        if (
            _recover(
                _hashTypedDataV4(_proposalStructHash(slot, headerHash, it.price, it.bidsRoot, relay)),
                it.proposalSignature
            ) != proposer
        ) revert BadProposerSignature();

        // effects
        _emitPosted(it, headerHash, proposer, relay);
        c.headHash = headerHash;
        c.headNumber = h.number;
        c.lastSlot = slot;
        unchecked {
            ++c.count;
        }
    }

    function _emitPosted(PostedHeader calldata it, bytes32 headerHash, address proposer, address relay) private {
        emit HeaderPosted(
            it.header.slot, headerHash, proposer, it.header.builder, relay, it.price, it.bidsRoot, it.proposalSignature
        );
    }

    /// @dev Steps 8 and 9; returns the relay that signed the AuctionResult (address(0) for the proposer's own block).
    function _checkSettlement(PostedHeader calldata it, Header calldata h, bytes32 headerHash)
        private
        view
        returns (address relay)
    {
        uint256 price = it.price;
        if (it.relaySignature.length == 0) {
            if (h.builder != h.proposer || price != 0 || it.bidsRoot != 0 || it.bidCount != 0 || it.runnerUp.length != 0)
            {
                revert MissingAuctionResult();
            }
            return address(0);
        }
        relay = _recover(
            _hashTypedDataV4(_auctionResultStructHash(h.slot, headerHash, price, it.bidsRoot, it.bidCount)),
            it.relaySignature
        );
        Relay storage r = _relays[relay];
        if (relay == address(0) || r.status != RelayStatus.Active || r.bond < MIN_RELAY_BOND) revert UnknownRelay(relay);

        uint256 value = h.value;
        uint256 reserve = RESERVE_PRICE;
        if (value < reserve) revert WrongPrice(reserve, value);
        uint256 nRunnerUp = it.runnerUp.length;
        if (PRICE_RULE == FIRST_PRICE) {
            if (nRunnerUp != 0) revert UnexpectedRunnerUp();
            if (price != value) revert WrongPrice(value, price);
        } else if (nRunnerUp == 0) {
            if (price != reserve) revert WrongPrice(reserve, price);
        } else {
            if (nRunnerUp != 1) revert UnexpectedRunnerUp();
            if (price < reserve) revert WrongPrice(reserve, price);
            if (price > value) revert WrongPrice(value, price);
            _checkRunnerUp(it.runnerUp[0], h, price, it.bidsRoot);
        }
    }

    function _checkRunnerUp(RunnerUp calldata ru, Header calldata h, uint256 price, bytes32 bidsRoot) private view {
        address ruBuilder = ru.builder;
        if (ruBuilder == h.builder) revert RunnerUpSameBuilder(ruBuilder);
        // high-level reads validate the calldata fields the hash below copies raw
        uint64 gasLimit = ru.gasLimit;
        uint64 gasUsed = ru.gasUsed;
        bytes32 payloadHash = ru.payloadHash;
        bytes32 ruHash = _runnerUpHash(h, gasLimit, gasUsed, payloadHash, ruBuilder, price);
        if (ruBuilder == address(0) || _recover(_hashTypedDataV4(ruHash), ru.builderSignature) != ruBuilder) {
            revert BadRunnerUpSignature();
        }
        if (!MerkleProof.verifyCalldata(ru.proof, bidsRoot, _bidsLeaf(ruHash, ru.receivedAtMs))) {
            revert RunnerUpNotInBidsRoot();
        }
    }

    // ------------------------------------------------------------------ proposer equivocation

    /// @notice Two differing Proposal (v2) signatures of one proposer for one slot: burns that proposer's whole bond
    /// (once per proposer), removes it from future sets and empties its remaining slots at once. One of the two may
    /// come from a HeaderPosted event (its fields and proposalSignature are the Proposal). The signer must be the
    /// proposer the schedule draws for the slot.
    function reportEquivocation(Proposal calldata a, bytes calldata sigA, Proposal calldata b, bytes calldata sigB)
        external
        nonReentrant
        returns (uint256 burned)
    {
        uint64 slot = a.slot;
        if (slot != b.slot) revert DifferentSlots(slot, b.slot);
        bytes32 ha = _proposalStructHash(slot, a.headerHash, a.price, a.bidsRoot, a.relay);
        bytes32 hb = _proposalStructHash(slot, b.headerHash, b.price, b.bidsRoot, b.relay);
        if (ha == hb) revert SameProposal();
        address pa = _recover(_hashTypedDataV4(ha), sigA);
        address pb = _recover(_hashTypedDataV4(hb), sigB);
        if (pa == address(0) || pb == address(0)) revert BadProposerSignature();
        if (pa != pb) revert DifferentSigners(pa, pb);
        address drawn = REGISTRY.drawnProposerForSlot(slot);
        if (drawn == address(0)) revert NoProposerForSlot(slot);
        if (pa != drawn) revert NotScheduledProposer(slot, drawn, pa);
        burned = REGISTRY.slash(pa, msg.sender);
        emit EquivocationReported(slot, pa, msg.sender, ha, hb, burned);
    }

    // ------------------------------------------------------------------ relay registry

    /// @notice Registers msg.sender as a relay with a bond of msg.value >= MIN_RELAY_BOND; accepted at once.
    function registerRelay() external payable {
        if (msg.value < MIN_RELAY_BOND) revert BondTooSmall(msg.value, MIN_RELAY_BOND);
        if (msg.value > type(uint96).max) revert BadConfig();
        Relay storage r = _relays[msg.sender];
        if (r.status != RelayStatus.None) revert AlreadyRegistered(msg.sender);
        r.bond = uint96(msg.value);
        r.status = RelayStatus.Active;
        r.withdrawableAt = 0;
        emit RelayRegistered(msg.sender, msg.value);
    }

    /// @notice Stops accepting the caller's AuctionResults at once; the bond is withdrawable after RELAY_EXIT_DELAY.
    function requestRelayExit() external {
        Relay storage r = _relays[msg.sender];
        if (r.status != RelayStatus.Active) revert RelayNotActive(msg.sender);
        r.status = RelayStatus.Exiting;
        uint64 readyAt = uint64(block.timestamp) + RELAY_EXIT_DELAY;
        r.withdrawableAt = readyAt;
        emit RelayExitRequested(msg.sender, readyAt);
    }

    function withdrawRelayBond() external nonReentrant {
        Relay storage r = _relays[msg.sender];
        if (r.status != RelayStatus.Exiting) revert RelayNotExiting(msg.sender);
        if (block.timestamp < r.withdrawableAt) revert ExitDelayNotOver(r.withdrawableAt);
        uint256 amount = r.bond;
        r.bond = 0;
        r.status = RelayStatus.None;
        emit RelayBondWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Two differing AuctionResult signatures of one relay for one slot: burns the relay's whole bond (it
    /// stays locked here, counted in totalRelayBurned) and refuses its results from then on. Active and exiting
    /// relays are slashable.
    function reportRelayEquivocation(
        AuctionResult calldata a,
        bytes calldata sigA,
        AuctionResult calldata b,
        bytes calldata sigB
    ) external nonReentrant returns (uint256 burned) {
        uint64 slot = a.slot;
        if (slot != b.slot) revert DifferentSlots(slot, b.slot);
        bytes32 ha = _auctionResultStructHash(slot, a.headerHash, a.price, a.bidsRoot, a.bidCount);
        bytes32 hb = _auctionResultStructHash(slot, b.headerHash, b.price, b.bidsRoot, b.bidCount);
        if (ha == hb) revert SameAuctionResult();
        address ra = _recover(_hashTypedDataV4(ha), sigA);
        address rb = _recover(_hashTypedDataV4(hb), sigB);
        if (ra == address(0) || rb == address(0)) revert BadRelaySignature();
        if (ra != rb) revert DifferentSigners(ra, rb);
        Relay storage r = _relays[ra];
        if (r.status == RelayStatus.Slashed) revert RelayAlreadySlashed(ra);
        if (r.status == RelayStatus.None) revert UnknownRelay(ra);
        burned = r.bond;
        r.bond = 0;
        r.status = RelayStatus.Slashed;
        totalRelayBurned += burned;
        emit RelayEquivocationReported(slot, ra, msg.sender, ha, hb, burned);
    }

    // ------------------------------------------------------------------ views

    /// @notice The one head: last posted header (hash, number); (0x00.., 0) = genesis before any post.
    function head() external view returns (bytes32 headerHash, uint64 number) {
        return (_headHash, _headNumber);
    }

    /// @notice Slot of the last posted header; 0 when none (check `headerCount()`).
    function lastPostedSlot() external view returns (uint64) {
        return _lastSlot;
    }

    function headerCount() external view returns (uint64) {
        return _headerCount;
    }

    function relayInfo(address relay) external view returns (uint256 bond, RelayStatus status, uint64 withdrawableAt) {
        Relay storage r = _relays[relay];
        return (r.bond, r.status, r.withdrawableAt);
    }

    /// @notice True when `relay`'s AuctionResults are accepted (registered, active, bonded >= MIN_RELAY_BOND).
    function isRelay(address relay) external view returns (bool) {
        Relay storage r = _relays[relay];
        return relay != address(0) && r.status == RelayStatus.Active && r.bond >= MIN_RELAY_BOND;
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

    /// @notice hashStruct(Proposal) (version 2).
    function hashProposal(Proposal calldata p) external pure returns (bytes32) {
        return _proposalStructHash(p.slot, p.headerHash, p.price, p.bidsRoot, p.relay);
    }

    function hashAuctionResult(AuctionResult calldata a) external pure returns (bytes32) {
        return _auctionResultStructHash(a.slot, a.headerHash, a.price, a.bidsRoot, a.bidCount);
    }

    /// @notice The digest the builder signs: keccak256("\x19\x01" || domainSeparator || hashHeader(h)).
    function headerDigest(Header calldata h) external view returns (bytes32) {
        return _hashTypedDataV4(_hashHeader(h));
    }

    /// @notice The digest the proposer signs for a Proposal (version 2).
    function proposalDigest(Proposal calldata p) external view returns (bytes32) {
        return _hashTypedDataV4(_proposalStructHash(p.slot, p.headerHash, p.price, p.bidsRoot, p.relay));
    }

    /// @notice The digest the relay signs for an AuctionResult.
    function auctionResultDigest(AuctionResult calldata a) external view returns (bytes32) {
        return _hashTypedDataV4(_auctionResultStructHash(a.slot, a.headerHash, a.price, a.bidsRoot, a.bidCount));
    }

    /// @notice The bids-root leaf of a bid: keccak256(bytes.concat(keccak256(abi.encode(headerHash, receivedAtMs)))),
    /// as the npm package merkle-tree (OpenZeppelin) StandardMerkleTree with types ["bytes32", "uint64"] (and BidsMerkle.LeafHash).
    function bidsLeaf(bytes32 headerHash, uint64 receivedAtMs) external pure returns (bytes32) {
        return _bidsLeaf(headerHash, receivedAtMs);
    }

    /// @notice Signature recovery exactly as postHeaders applies it (v in {0,1,27,28}, low s); address(0) if invalid.
    function recoverSigner(bytes32 digest, bytes calldata signature) external view returns (address) {
        return _recover(digest, signature);
    }

    // ------------------------------------------------------------------ internals

    function _hashHeader(Header calldata h) private pure returns (bytes32 r) {
        bytes32 th = HEADER_TYPEHASH;
        // every field of `h` that is narrower than 32 bytes is read (and so validated) by the high-level code
        // of postHeaders before a post is accepted; hashHeader() is a pure helper.
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), h, 0x160)
            r := keccak256(m, 0x180)
        }
    }

    /// @dev hashStruct of the runner-up's Header: the winner's l2ChainId, slot, number, parentHash, timestampMs,
    /// proposer; the evidence's gasLimit, gasUsed, payloadHash, builder; value = price.
    function _runnerUpHash(
        Header calldata h,
        uint64 gasLimit,
        uint64 gasUsed,
        bytes32 payloadHash,
        address builder,
        uint256 price
    ) private pure returns (bytes32 r) {
        bytes32 th = HEADER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), h, 0xa0) // l2ChainId, slot, number, parentHash, timestampMs
            mstore(add(m, 0xc0), gasLimit)
            mstore(add(m, 0xe0), gasUsed)
            mstore(add(m, 0x100), payloadHash)
            mstore(add(m, 0x120), builder)
            mstore(add(m, 0x140), calldataload(add(h, 0x120))) // proposer
            mstore(add(m, 0x160), price)
            r := keccak256(m, 0x180)
        }
    }

    function _proposalStructHash(uint64 slot, bytes32 headerHash, uint256 price, bytes32 bidsRoot, address relay)
        private
        pure
        returns (bytes32 r)
    {
        bytes32 th = PROPOSAL_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            mstore(add(m, 0x20), slot)
            mstore(add(m, 0x40), headerHash)
            mstore(add(m, 0x60), price)
            mstore(add(m, 0x80), bidsRoot)
            mstore(add(m, 0xa0), relay)
            r := keccak256(m, 0xc0)
        }
    }

    function _auctionResultStructHash(
        uint64 slot,
        bytes32 headerHash,
        uint256 price,
        bytes32 bidsRoot,
        uint32 bidCount
    ) private pure returns (bytes32 r) {
        bytes32 th = AUCTION_RESULT_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            mstore(add(m, 0x20), slot)
            mstore(add(m, 0x40), headerHash)
            mstore(add(m, 0x60), price)
            mstore(add(m, 0x80), bidsRoot)
            mstore(add(m, 0xa0), bidCount)
            r := keccak256(m, 0xc0)
        }
    }

    function _bidsLeaf(bytes32 headerHash, uint64 receivedAtMs) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(headerHash, receivedAtMs))));
    }

    /// @dev 65-byte r||s||v, v in {27,28} or {0,1}; rejects high s (as OpenZeppelin ECDSA). Returns address(0) on
    /// any failure.
    function _recover(bytes32 digest, bytes calldata sig) private view returns (address signer) {
        if (sig.length != 65) return address(0);
        assembly ("memory-safe") {
            let r := calldataload(sig.offset)
            let s := calldataload(add(sig.offset, 32))
            let v := byte(0, calldataload(add(sig.offset, 64)))
            if lt(v, 27) { v := add(v, 27) }
            if and(
                iszero(gt(s, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)),
                or(eq(v, 27), eq(v, 28))
            ) {
                let m := mload(0x40)
                mstore(m, digest)
                mstore(add(m, 0x20), v)
                mstore(add(m, 0x40), r)
                mstore(add(m, 0x60), s)
                if staticcall(gas(), 1, m, 0x80, 0x00, 0x20) {
                    if eq(returndatasize(), 0x20) { signer := mload(0x00) }
                }
            }
        }
    }
}
