// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IPbsErrors, PostedHeader, Proposal, AuctionResult} from "../src/PbsTypes.sol";
import {ProposerRegistry} from "../src/ProposerRegistry.sol";
import {Inbox} from "../src/Inbox.sol";

/// @notice Proposer equivocation (Proposal v2), unbundling, slashed proposers' empty slots, and the relay registry
/// with relay equivocation.
contract EquivocationTest is Fixture {
    event EquivocationReported(
        uint64 indexed slot,
        address indexed proposer,
        address indexed reporter,
        bytes32 proposalHashA,
        bytes32 proposalHashB,
        uint256 burned
    );
    event RelayEquivocationReported(
        uint64 indexed slot,
        address indexed relay,
        address indexed reporter,
        bytes32 resultHashA,
        bytes32 resultHashB,
        uint256 burned
    );

    uint64 internal constant SLOT = 9_990;
    bytes32 internal constant HA = keccak256("header A");
    bytes32 internal constant HB = keccak256("header B");

    function _prop(uint64 slot, bytes32 hh) internal view returns (Proposal memory) {
        return Proposal(slot, hh, 0.6 ether, keccak256("root"), relay);
    }

    /// @dev digests computed locally (no call to the inbox, so that vm.expectRevert / vm.prank apply to the report)
    function _digest(bytes32 structHash) internal view returns (bytes32) {
        bytes32 dom = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("PbsMarket"),
                keccak256("1"),
                block.chainid,
                address(inbox)
            )
        );
        return keccak256(abi.encodePacked(hex"1901", dom, structHash));
    }

    function _sign(address signer, Proposal memory p) internal view returns (bytes memory) {
        bytes32 th = keccak256("Proposal(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,address relay)");
        return sig(key(signer), _digest(keccak256(abi.encode(th, p.slot, p.headerHash, p.price, p.bidsRoot, p.relay))));
    }

    function _slashed(address p) internal view returns (bool) {
        (, ProposerRegistry.Status st,,,) = registry.proposerInfo(p);
        return st == ProposerRegistry.Status.Slashed;
    }

    // ------------------------------------------------------------------ proposer equivocation

    function test_equivocationSlashesOnce() public {
        address p = registry.proposerForSlot(SLOT);
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        bytes memory sa = _sign(p, a);
        bytes memory sb = _sign(p, b);
        uint64 e = registry.currentEpoch();
        _reportExpectingEvent(p, a, sa, b, sb);
        _checkSlashed(p, e);
        // once only, whatever the evidence
        Proposal memory c = _prop(SLOT, keccak256("header C"));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadySlashed.selector, p));
        inbox.reportEquivocation(a, sa, c, _sign(p, c));
        // a slashed proposer can neither exit, withdraw, nor join again
        vm.startPrank(p);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotActive.selector, p));
        registry.requestExit();
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotExiting.selector, p));
        registry.withdrawBond();
        vm.deal(p, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadyRegistered.selector, p));
        registry.join{value: 1 ether}();
        vm.stopPrank();
    }

    function _reportExpectingEvent(
        address p,
        Proposal memory a,
        bytes memory sa,
        Proposal memory b,
        bytes memory sb
    ) internal {
        address reporter = address(0xBEEF);
        bytes32 ha = inbox.hashProposal(a);
        bytes32 hb = inbox.hashProposal(b);
        vm.expectEmit(true, true, true, true, address(inbox));
        emit EquivocationReported(SLOT, p, reporter, ha, hb, MIN_BOND);
        vm.prank(reporter);
        uint256 burned = inbox.reportEquivocation(a, sa, b, sb);
        assertEq(burned, MIN_BOND);
        assertEq(registry.totalBurned(), MIN_BOND);
        assertEq(reporter.balance, 0);
    }

    function _checkSlashed(address p, uint64 e) internal view {
        (uint256 bond, ProposerRegistry.Status st,, uint64 exitEpoch,) = registry.proposerInfo(p);
        assertEq(bond, 0);
        assertTrue(st == ProposerRegistry.Status.Slashed);
        assertEq(exitEpoch, e + 2);
        assertFalse(registry.isProposer(p, e + 2));
    }

    /// @notice Same header, another settlement (e.g. another relay's cheaper result): equivocation too.
    function test_sameHeaderOtherSettlementIsEquivocation() public {
        address p = registry.proposerForSlot(SLOT);
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HA);
        b.price = RESERVE;
        b.relay = address(0x1234);
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
        assertTrue(_slashed(p), "slashed");
        Proposal memory c = _prop(SLOT + 1, HA);
        address q = registry.proposerForSlot(SLOT + 1);
        if (q != address(0) && q != p) {
            Proposal memory d = _prop(SLOT + 1, HA);
            d.bidsRoot = keccak256("other root");
            inbox.reportEquivocation(c, _sign(q, c), d, _sign(q, d));
            assertTrue(_slashed(q), "slashed by bids root");
        }
    }

    /// @notice Unbundling end to end on L1: the proposer signed the relay's header (the relay holds that Proposal),
    /// then posts its own block for the slot. The relay reports the HeaderPosted record against its proposal: the
    /// proposer is slashed, its remaining slots are empty at once and the inbox refuses its headers.
    function test_unbundlingAgainstHeaderPostedRecordSlashesAndUnschedules() public {
        // two external calls: the IR pipeline's inliner otherwise makes one function too deep for the stack
        (address p, bytes32 ownHash) = this.unbundleAndReport();
        assertTrue(_slashed(p), "slashed");
        this.assertUnscheduledFromNowOn(p, ownHash);
    }

    /// @dev The relay's copy is signed by the proposer, which then posts its own block for the slot; the relay
    /// reports the HeaderPosted record against its proposal. Returns the proposer and its own block's hash.
    function unbundleAndReport() external returns (address p, bytes32 ownHash) {
        PostedHeader memory relays = item(SLOT, 1, bytes32(0)); // the relay's copy, with the proposer's signature
        p = relays.header.proposer;
        PostedHeader memory own = ownBlock(SLOT, 1, bytes32(0)); // the stolen block, re-signed as its own
        vm.recordLogs();
        inbox.postHeaders(one(own));
        // read the record back from the HeaderPosted event, as the relay's watcher does
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 topic = keccak256("HeaderPosted(uint64,bytes32,address,address,address,uint256,bytes32,bytes)");
        Proposal memory onL1;
        bytes memory onL1Sig;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics[0] != topic) continue;
            (, address rel, uint256 price, bytes32 root, bytes memory s) =
                abi.decode(logs[i].data, (address, address, uint256, bytes32, bytes));
            onL1 = Proposal(uint64(uint256(logs[i].topics[1])), logs[i].topics[2], price, root, rel);
            onL1Sig = s;
        }
        ownHash = hashOf(own);
        assertEq(onL1.headerHash, ownHash);
        inbox.reportEquivocation(proposalOf(relays, relay), relays.proposalSignature, onL1, onL1Sig);
    }

    /// @dev Every remaining slot of the slashed `p` is empty from now on, and its header for one of them is refused.
    function assertUnscheduledFromNowOn(address p, bytes32 headHash) external {
        uint64 later;
        uint64 lastScheduled = (registry.currentEpoch() + 2) * SLOTS_PER_EPOCH; // p leaves the set there
        for (uint64 s = SLOT + 1; s < lastScheduled; ++s) {
            assertTrue(registry.proposerForSlot(s) != p, "slot still scheduled");
            if (later == 0 && registry.drawnProposerForSlot(s) == p) later = s;
        }
        assertTrue(later != 0, "p drawn again later");
        assertEq(registry.proposerForSlot(later), address(0));
        warpToSlot(later);
        PostedHeader memory next = item(later, 2, headHash);
        next.header.proposer = p;
        signItem(next, relayPk);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NoProposerForSlot.selector, later));
        inbox.postHeaders(one(next));
    }

    function test_slashWhileExitingKeepsExitEpoch() public {
        address p = registry.proposerForSlot(SLOT);
        vm.prank(p);
        registry.requestExit();
        (,,, uint64 exitEpoch,) = registry.proposerInfo(p);
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
        (uint256 bond, ProposerRegistry.Status st,, uint64 exitEpoch2,) = registry.proposerInfo(p);
        assertEq(bond, 0);
        assertTrue(st == ProposerRegistry.Status.Slashed);
        assertEq(exitEpoch2, exitEpoch);
        assertEq(registry.proposerSetSizeAt(exitEpoch), NUM_GENESIS - 1);
    }

    function test_revert_differentSlots() public {
        address p = registry.proposerForSlot(SLOT);
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT + 1, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.DifferentSlots.selector, SLOT, SLOT + 1));
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
    }

    function test_revert_sameProposal() public {
        address p = registry.proposerForSlot(SLOT);
        Proposal memory a = _prop(SLOT, HA);
        bytes memory sa = _sign(p, a);
        vm.expectRevert(IPbsErrors.SameProposal.selector);
        inbox.reportEquivocation(a, sa, a, sa);
    }

    function test_revert_differentSigners() public {
        address p = registry.proposerForSlot(SLOT);
        address q = genesisProposers[0] == p ? genesisProposers[1] : genesisProposers[0];
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.DifferentSigners.selector, p, q));
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(q, b));
    }

    function test_revert_badSignature() public {
        address p = registry.proposerForSlot(SLOT);
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.reportEquivocation(a, _sign(p, a), b, new bytes(65));
    }

    function test_revert_notScheduledProposer() public {
        address p = registry.proposerForSlot(SLOT);
        address q = genesisProposers[0] == p ? genesisProposers[1] : genesisProposers[0];
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotScheduledProposer.selector, SLOT, p, q));
        inbox.reportEquivocation(a, _sign(q, a), b, _sign(q, b));
    }

    function test_revert_noProposerForSlot() public {
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            vm.prank(genesisProposers[i]);
            registry.requestExit();
        }
        uint64 slot = (registry.currentEpoch() + 2) * SLOTS_PER_EPOCH;
        address p = genesisProposers[0];
        Proposal memory a = _prop(slot, HA);
        Proposal memory b = _prop(slot, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NoProposerForSlot.selector, slot));
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
    }

    function test_revert_notBondedAfterWithdrawal() public {
        address p = registry.proposerForSlot(SLOT);
        vm.prank(p);
        registry.requestExit();
        (,,,, uint64 unlockAt) = registry.proposerInfo(p);
        vm.warp(unlockAt);
        vm.prank(p);
        registry.withdrawBond();
        Proposal memory a = _prop(SLOT, HA);
        Proposal memory b = _prop(SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotBonded.selector, p));
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
    }

    /// @notice Any two Proposals of the drawn proposer for one slot that differ in any field slash it.
    function testFuzz_anyTwoDifferingProposalsSlash(bytes32 ha, bytes32 hb, uint256 pa, uint256 pb, uint64 slot)
        public
    {
        slot = uint64(bound(slot, 0, 20_000));
        Proposal memory a = Proposal(slot, ha, pa, keccak256("r"), relay);
        Proposal memory b = Proposal(slot, hb, pb, keccak256("r"), relay);
        vm.assume(ha != hb || pa != pb);
        address p = registry.proposerForSlot(slot);
        inbox.reportEquivocation(a, _sign(p, a), b, _sign(p, b));
        assertTrue(_slashed(p));
    }

    // ------------------------------------------------------------------ relay registry

    function _result(uint64 slot, bytes32 hh, uint256 price) internal pure returns (AuctionResult memory) {
        return AuctionResult(slot, hh, price, keccak256("root"), 3);
    }

    function _signResult(uint256 pk, AuctionResult memory a) internal view returns (bytes memory) {
        bytes32 th = keccak256("AuctionResult(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,uint32 bidCount)");
        return sig(pk, _digest(keccak256(abi.encode(th, a.slot, a.headerHash, a.price, a.bidsRoot, a.bidCount))));
    }

    function test_relayRegistryLifecycle() public {
        (uint256 bond, Inbox.RelayStatus st,) = inbox.relayInfo(relay);
        assertEq(bond, MIN_RELAY_BOND);
        assertTrue(st == Inbox.RelayStatus.Active);
        assertTrue(inbox.isRelay(relay), "active");
        vm.startPrank(relay);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadyRegistered.selector, relay));
        inbox.registerRelay{value: MIN_RELAY_BOND}();
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.RelayNotExiting.selector, relay));
        inbox.withdrawRelayBond();
        inbox.requestRelayExit();
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.RelayNotActive.selector, relay));
        inbox.requestRelayExit();
        uint64 readyAt = uint64(block.timestamp) + RELAY_EXIT_DELAY;
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.ExitDelayNotOver.selector, readyAt));
        inbox.withdrawRelayBond();
        vm.warp(readyAt);
        uint256 before = relay.balance;
        inbox.withdrawRelayBond();
        assertEq(relay.balance, before + MIN_RELAY_BOND);
        // may register again
        inbox.registerRelay{value: MIN_RELAY_BOND}();
        vm.stopPrank();
        assertTrue(inbox.isRelay(relay), "again");
    }

    function test_revert_registerRelayBondTooSmall() public {
        address r = vm.addr(0xE1);
        vm.deal(r, 10 ether);
        vm.prank(r);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BondTooSmall.selector, MIN_RELAY_BOND - 1, MIN_RELAY_BOND));
        inbox.registerRelay{value: MIN_RELAY_BOND - 1}();
    }

    function test_relayEquivocationBurnsBondAndRefusesItsResults() public {
        AuctionResult memory a = _result(SLOT, HA, 1 ether);
        AuctionResult memory b = _result(SLOT, HA, 0.5 ether);
        address reporter = address(0xBEEF);
        bytes32 ha = inbox.hashAuctionResult(a);
        bytes32 hb = inbox.hashAuctionResult(b);
        vm.expectEmit(true, true, true, true, address(inbox));
        emit RelayEquivocationReported(SLOT, relay, reporter, ha, hb, MIN_RELAY_BOND);
        vm.prank(reporter);
        uint256 burned = inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, _signResult(relayPk, b));
        assertEq(burned, MIN_RELAY_BOND);
        assertEq(inbox.totalRelayBurned(), MIN_RELAY_BOND);
        assertFalse(inbox.isRelay(relay));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.RelayAlreadySlashed.selector, relay));
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, _signResult(relayPk, b));
        PostedHeader memory p = item(100, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, relay));
        inbox.postHeaders(one(p));
        vm.prank(relay);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadyRegistered.selector, relay));
        inbox.registerRelay{value: MIN_RELAY_BOND}();
    }

    function test_exitingRelayIsStillSlashable() public {
        vm.prank(relay);
        inbox.requestRelayExit();
        AuctionResult memory a = _result(SLOT, HA, 1 ether);
        AuctionResult memory b = _result(SLOT, HB, 1 ether);
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, _signResult(relayPk, b));
        vm.warp(block.timestamp + RELAY_EXIT_DELAY);
        vm.prank(relay);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.RelayNotExiting.selector, relay));
        inbox.withdrawRelayBond();
    }

    function test_revert_relayEquivocationRefusals() public {
        AuctionResult memory a = _result(SLOT, HA, 1 ether);
        AuctionResult memory b = _result(SLOT + 1, HB, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.DifferentSlots.selector, SLOT, SLOT + 1));
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, _signResult(relayPk, b));
        vm.expectRevert(IPbsErrors.SameAuctionResult.selector);
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), a, _signResult(relayPk, a));
        b = _result(SLOT, HB, 1 ether);
        vm.expectRevert(IPbsErrors.BadRelaySignature.selector);
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, hex"00");
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.DifferentSigners.selector, relay, vm.addr(0xE2)));
        inbox.reportRelayEquivocation(a, _signResult(relayPk, a), b, _signResult(0xE2, b));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.UnknownRelay.selector, vm.addr(0xE2)));
        inbox.reportRelayEquivocation(a, _signResult(0xE2, a), b, _signResult(0xE2, b));
    }
}
