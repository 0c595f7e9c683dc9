// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {ProposerRegistry} from "../../src/ProposerRegistry.sol";
import {BuilderEscrow} from "../../src/BuilderEscrow.sol";
import {Inbox} from "../../src/Inbox.sol";
import {Header, PostedHeader} from "../../src/PbsTypes.sol";

/// @notice Deploys the three contracts the documented way and offers header/signature helpers.
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

    ProposerRegistry internal registry;
    BuilderEscrow internal escrow;
    Inbox internal inbox;

    mapping(address => uint256) internal keyOf;
    address[] internal genesisProposers;
    uint256 internal builderPk = 0xB0B;
    address internal builder;

    function setUp() public virtual {
        vm.warp(GENESIS_MS / 1000 + 10_000 * uint256(SLOT_MS) / 1000); // slot 10_000, epoch 312
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            uint256 pk = 0xA000 + i;
            address a = vm.addr(pk);
            keyOf[a] = pk;
            genesisProposers.push(a);
        }
        builder = vm.addr(builderPk);
        keyOf[builder] = builderPk;
        registry = new ProposerRegistry{value: MIN_BOND * NUM_GENESIS}(
            GENESIS_MS, SLOT_MS, SLOTS_PER_EPOCH, MIN_BOND, EXIT_DELAY, genesisProposers
        );
        escrow = new BuilderEscrow(WITHDRAWAL_DELAY);
        inbox = new Inbox(address(registry), address(escrow), L2_CHAIN_ID);
        registry.setInbox(address(inbox));
        escrow.setInbox(address(inbox));
        vm.deal(builder, 1000 ether);
        vm.prank(builder);
        escrow.deposit{value: 100 ether}();
    }

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

    function header(uint64 slot, uint64 number, bytes32 parent, bytes memory payload, uint256 value)
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
            builder: builder,
            proposer: registry.proposerForSlot(slot),
            value: value
        });
    }

    /// @notice Signs `h` with the builder key of h.builder and the proposal with the key of h.proposer.
    function signed(Header memory h, bytes memory payload, uint256 price, bytes32 bidsRoot)
        internal
        view
        returns (PostedHeader memory p)
    {
        bytes32 hh = inbox.hashHeader(h);
        p.header = h;
        p.builderSignature = sig(key(h.builder), inbox.headerDigest(h));
        p.proposalSignature = sig(key(h.proposer), inbox.proposalDigest(h.slot, hh));
        p.payload = payload;
        p.price = price;
        p.bidsRoot = bidsRoot;
    }

    function item(uint64 slot, uint64 number, bytes32 parent) internal view returns (PostedHeader memory) {
        bytes memory payload = hex"c0";
        return signed(header(slot, number, parent, payload, 1 ether), payload, 0.5 ether, keccak256("bids"));
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

    /// @notice Chain of `n` headers on consecutive slots from `firstSlot`, extending (parent, parentNumber).
    function chain(uint64 firstSlot, uint256 n, bytes32 parent, uint64 parentNumber, bytes memory payload)
        internal
        view
        returns (PostedHeader[] memory a)
    {
        a = new PostedHeader[](n);
        for (uint256 i = 0; i < n; ++i) {
            Header memory h = header(firstSlot + uint64(i), parentNumber + 1, parent, payload, 1 ether);
            a[i] = signed(h, payload, 0.25 ether, bytes32(uint256(i + 1)));
            parent = inbox.hashHeader(h);
            parentNumber += 1;
        }
    }
}
