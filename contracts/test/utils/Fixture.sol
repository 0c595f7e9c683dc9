// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {ProposerRegistry} from "../../src/ProposerRegistry.sol";
import {BuilderEscrow} from "../../src/BuilderEscrow.sol";
import {Inbox} from "../../src/Inbox.sol";
import {Header, Proposal, AuctionResult, RunnerUp, PostedHeader} from "../../src/PbsTypes.sol";

/// @notice Deploys the three contracts the documented way (second price, a reserve, one registered relay, four
/// genesis proposers, four builders with collateral at that relay) and builds signed protocol-v2 items:
/// a winner, a runner-up of another builder, more bids, the bids root (StandardMerkleTree layout), the relay's
/// AuctionResult signature and the proposer's Proposal v2 signature.
abstract contract Fixture is Test {
    uint64 internal constant GENESIS_MS = 1_700_000_000_000;
    uint64 internal constant SLOT_MS = 2000;
    uint64 internal constant SLOTS_PER_EPOCH = 32;
    uint256 internal constant MIN_BOND = 1 ether;
    uint64 internal constant EXIT_DELAY = 3 days;
    uint64 internal constant WITHDRAWAL_DELAY = 1 days;
    uint256 internal constant L2_CHAIN_ID = 424242;
    uint64 internal constant GAS_LIMIT = 30_000_000;
    uint256 internal constant NUM_GENESIS = 4;
    uint256 internal constant NUM_BUILDERS = 4;
    uint256 internal constant RESERVE = 0.01 ether;
    uint256 internal constant MIN_RELAY_BOND = 5 ether;
    uint64 internal constant RELAY_EXIT_DELAY = 1 days;
    uint256 internal constant DEPOSIT = 100 ether;
    /// @dev the fixture's L1 time is the start of this slot (+ 1 s); posts use slots <= it
    uint64 internal constant NOW_SLOT = 10_000;

    ProposerRegistry internal registry;
    BuilderEscrow internal escrow;
    Inbox internal inbox;

    mapping(address => uint256) internal keyOf;
    address[] internal genesisProposers;
    address[] internal builders;
    uint256 internal relayPk = 0xC0FFEE;
    address internal relay;
    /// @dev kept for tests written against one builder
    address internal builder;

    /// @dev what one item is made of
    struct Spec {
        uint64 slot;
        uint64 number;
        bytes32 parent;
        bytes payload;
        uint256 winner; // index into builders
        uint256 value;
        bool hasRunnerUp;
        uint256 runner; // index into builders
        uint256 runnerValue; // = price under second price
        uint256 extraBids; // further bids (below the runner-up) in the bids root
    }

    function priceRule() internal pure virtual returns (uint8) {
        return 1; // SECOND_PRICE
    }

    function setUp() public virtual {
        vm.warp(GENESIS_MS / 1000 + uint256(NOW_SLOT) * SLOT_MS / 1000 + 1); // inside slot NOW_SLOT, epoch 312
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            uint256 pk = 0xA000 + i;
            address a = vm.addr(pk);
            keyOf[a] = pk;
            genesisProposers.push(a);
        }
        relay = vm.addr(relayPk);
        keyOf[relay] = relayPk;
        registry = new ProposerRegistry{value: MIN_BOND * NUM_GENESIS}(
            GENESIS_MS, SLOT_MS, SLOTS_PER_EPOCH, MIN_BOND, EXIT_DELAY, genesisProposers
        );
        escrow = new BuilderEscrow(WITHDRAWAL_DELAY);
        inbox = new Inbox(
            address(registry), address(escrow), L2_CHAIN_ID, priceRule(), RESERVE, MIN_RELAY_BOND, RELAY_EXIT_DELAY
        );
        registry.setInbox(address(inbox));
        escrow.setInbox(address(inbox));
        vm.deal(relay, 100 ether);
        vm.prank(relay);
        inbox.registerRelay{value: MIN_RELAY_BOND}();
        for (uint256 i = 0; i < NUM_BUILDERS; ++i) {
            uint256 pk = 0xB000 + i;
            address b = vm.addr(pk);
            keyOf[b] = pk;
            builders.push(b);
            vm.deal(b, 1000 ether);
            vm.prank(b);
            escrow.deposit{value: DEPOSIT}(relay);
        }
        builder = builders[0];
    }

    // ------------------------------------------------------------------ keys, signatures, time

    function key(address a) internal view returns (uint256 pk) {
        pk = keyOf[a];
        require(pk != 0, "no key for address");
    }

    function sig(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function startMs(uint64 slot) internal pure returns (uint64) {
        return GENESIS_MS + slot * SLOT_MS;
    }

    /// @notice L1 time inside `slot` (1 s after its start).
    function warpToSlot(uint64 slot) internal {
        vm.warp(uint256(startMs(slot)) / 1000 + 1);
    }

    // ------------------------------------------------------------------ headers

    function header(uint64 slot, uint64 number, bytes32 parent, bytes memory payload, uint256 value)
        internal
        view
        returns (Header memory)
    {
        return headerOf(slot, number, parent, payload, value, builder);
    }

    function headerOf(uint64 slot, uint64 number, bytes32 parent, bytes memory payload, uint256 value, address b)
        internal
        view
        returns (Header memory h)
    {
        h = Header({
            l2ChainId: L2_CHAIN_ID,
            slot: slot,
            number: number,
            parentHash: parent,
            timestampMs: startMs(slot),
            gasLimit: GAS_LIMIT,
            gasUsed: 21_000,
            payloadHash: keccak256(payload),
            builder: b,
            proposer: registry.proposerForSlot(slot),
            value: value
        });
        // a slot without a scheduled proposer (tests of that refusal): sign as the first genesis proposer
        if (h.proposer == address(0)) h.proposer = genesisProposers[0];
    }

    function proposalOf(PostedHeader memory p, address relay_) internal view returns (Proposal memory) {
        return Proposal(p.header.slot, inbox.hashHeader(p.header), p.price, p.bidsRoot, relay_);
    }

    function resultOf(PostedHeader memory p) internal view returns (AuctionResult memory) {
        return AuctionResult(p.header.slot, inbox.hashHeader(p.header), p.price, p.bidsRoot, p.bidCount);
    }

    /// @notice Runner-up evidence of builder `b` bidding `value` against the winner `h`.
    function runnerUpOf(Header memory h, address b, uint64 receivedAtMs) internal view returns (RunnerUp memory r) {
        r.gasLimit = h.gasLimit;
        r.gasUsed = 42_000;
        r.payloadHash = keccak256(abi.encode("runner-up payload", b, h.slot));
        r.builder = b;
        r.receivedAtMs = receivedAtMs;
    }

    function runnerUpHeader(Header memory h, RunnerUp memory r, uint256 price) internal pure returns (Header memory x) {
        x = Header(h.l2ChainId, h.slot, h.number, h.parentHash, h.timestampMs, 0, 0, 0, address(0), h.proposer, 0);
        x.gasLimit = r.gasLimit;
        x.gasUsed = r.gasUsed;
        x.payloadHash = r.payloadHash;
        x.builder = r.builder;
        x.value = price;
    }

    /// @notice A full auctioned item: winner, optional runner-up of another builder, extra bids, bids root,
    /// AuctionResult signed by `relay`, Proposal v2 signed by the scheduled proposer.
    function make(Spec memory s) internal view returns (PostedHeader memory p) {
        Header memory h = headerOf(s.slot, s.number, s.parent, s.payload, s.value, builders[s.winner]);
        p.header = h;
        p.payload = s.payload;
        bytes32 hh = inbox.hashHeader(h);
        uint64 t0 = startMs(s.slot) - 1500;
        uint256 nLeaves = 1 + (s.hasRunnerUp ? 1 : 0) + s.extraBids;
        bytes32[] memory leaves = new bytes32[](nLeaves);
        leaves[0] = inbox.bidsLeaf(hh, t0 + 300);
        uint256 k = 1;
        bytes32 ruLeaf;
        if (s.hasRunnerUp) {
            RunnerUp memory r = runnerUpOf(h, builders[s.runner], t0 + 200);
            Header memory rh = runnerUpHeader(h, r, s.runnerValue);
            r.builderSignature = sig(key(r.builder), inbox.headerDigest(rh));
            ruLeaf = inbox.bidsLeaf(inbox.hashHeader(rh), r.receivedAtMs);
            leaves[k++] = ruLeaf;
            p.runnerUp = new RunnerUp[](1);
            p.runnerUp[0] = r;
            p.price = s.runnerValue;
        } else {
            p.runnerUp = new RunnerUp[](0);
            p.price = priceRule() == 0 ? s.value : RESERVE;
        }
        if (priceRule() == 0) p.price = s.value;
        for (uint256 i = 0; i < s.extraBids; ++i) {
            leaves[k++] = keccak256(abi.encode("extra bid", s.slot, i));
        }
        bytes32[] memory tree = merkleTree(leaves);
        p.bidsRoot = tree[0];
        p.bidCount = uint32(nLeaves);
        if (s.hasRunnerUp) p.runnerUp[0].proof = merkleProof(tree, ruLeaf);
        signItem(p, relayPk);
    }

    /// @notice (Re)signs the builder's header, the relay's AuctionResult (with `relayKey`; 0 = no auction) and the
    /// proposer's Proposal v2 from the item's current fields.
    function signItem(PostedHeader memory p, uint256 relayKey) internal view {
        p.builderSignature = sig(key(p.header.builder), inbox.headerDigest(p.header));
        address r;
        if (relayKey != 0) {
            p.relaySignature = sig(relayKey, inbox.auctionResultDigest(resultOf(p)));
            r = vm.addr(relayKey);
        } else {
            p.relaySignature = "";
        }
        p.proposalSignature = sig(key(p.header.proposer), inbox.proposalDigest(proposalOf(p, r)));
    }

    /// @notice The default auctioned item: winner builders[slot % 4] at 1 ether, runner-up builders[(slot+1) % 4]
    /// at 0.6 ether, two more bids.
    function item(uint64 slot, uint64 number, bytes32 parent) internal view returns (PostedHeader memory) {
        return make(spec(slot, number, parent, hex"c0"));
    }

    function spec(uint64 slot, uint64 number, bytes32 parent, bytes memory payload)
        internal
        pure
        returns (Spec memory)
    {
        return Spec({
            slot: slot,
            number: number,
            parent: parent,
            payload: payload,
            winner: slot % NUM_BUILDERS,
            value: 1 ether,
            hasRunnerUp: true,
            runner: (slot + 1) % NUM_BUILDERS,
            runnerValue: 0.6 ether,
            extraBids: 2
        });
    }

    /// @notice The proposer's own block (no auction): builder = proposer, price 0, no relay.
    function ownBlock(uint64 slot, uint64 number, bytes32 parent) internal view returns (PostedHeader memory p) {
        address prop = registry.proposerForSlot(slot);
        p.header = headerOf(slot, number, parent, hex"c0", 0, prop);
        p.payload = hex"c0";
        p.runnerUp = new RunnerUp[](0);
        signItem(p, 0);
    }

    function one(PostedHeader memory p) internal pure returns (PostedHeader[] memory a) {
        a = new PostedHeader[](1);
        a[0] = p;
    }

    function two(PostedHeader memory p, PostedHeader memory q) internal pure returns (PostedHeader[] memory a) {
        a = new PostedHeader[](2);
        a[0] = p;
        a[1] = q;
    }

    /// @notice Chain of `n` auctioned headers on consecutive slots from `firstSlot`, extending (parent, parentNumber).
    function chain(uint64 firstSlot, uint256 n, bytes32 parent, uint64 parentNumber, bytes memory payload)
        internal
        view
        returns (PostedHeader[] memory a)
    {
        a = new PostedHeader[](n);
        for (uint256 i = 0; i < n; ++i) {
            Spec memory s = spec(firstSlot + uint64(i), parentNumber + 1, parent, payload);
            a[i] = make(s);
            parent = inbox.hashHeader(a[i].header);
            parentNumber += 1;
        }
    }

    function hashOf(PostedHeader memory p) internal view returns (bytes32) {
        return inbox.hashHeader(p.header);
    }

    // ------------------------------------------------------------------ StandardMerkleTree (OpenZeppelin layout)

    /// @notice tree[0] is the root; leaves sorted ascending at tree[2n-2-i]; parent i = hash(sort(2i+1, 2i+2)).
    function merkleTree(bytes32[] memory leaves) internal pure returns (bytes32[] memory tree) {
        uint256 n = leaves.length;
        if (n == 0) {
            tree = new bytes32[](1);
            return tree; // root 0x00..
        }
        bytes32[] memory sorted = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) sorted[i] = leaves[i];
        for (uint256 i = 1; i < n; ++i) {
            bytes32 x = sorted[i];
            uint256 j = i;
            while (j > 0 && sorted[j - 1] > x) {
                sorted[j] = sorted[j - 1];
                --j;
            }
            sorted[j] = x;
        }
        tree = new bytes32[](2 * n - 1);
        for (uint256 i = 0; i < n; ++i) tree[tree.length - 1 - i] = sorted[i];
        for (uint256 i = tree.length - 1 - n + 1; i > 0; --i) {
            uint256 k = i - 1;
            tree[k] = nodeHash(tree[2 * k + 1], tree[2 * k + 2]);
        }
    }

    function nodeHash(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function merkleProof(bytes32[] memory tree, bytes32 leaf) internal pure returns (bytes32[] memory proof) {
        uint256 n = (tree.length + 1) / 2;
        uint256 index = type(uint256).max;
        for (uint256 i = tree.length - n; i < tree.length; ++i) {
            if (tree[i] == leaf) {
                index = i;
                break;
            }
        }
        require(index != type(uint256).max, "leaf not in tree");
        uint256 depth;
        for (uint256 j = index; j > 0; j = (j - 1) / 2) ++depth;
        proof = new bytes32[](depth);
        uint256 d;
        while (index > 0) {
            proof[d++] = tree[index % 2 == 1 ? index + 1 : index - 1];
            index = (index - 1) / 2;
        }
    }
}
