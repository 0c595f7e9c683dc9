// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IPbsErrors, PostedHeader} from "../src/PbsTypes.sol";
import {ProposerRegistry} from "../src/ProposerRegistry.sol";

contract EquivocationTest is Fixture {
    event EquivocationReported(
        uint64 indexed slot,
        address indexed proposer,
        address indexed reporter,
        bytes32 headerHashA,
        bytes32 headerHashB,
        uint256 burned
    );

    uint64 internal constant SLOT = 9_990;
    bytes32 internal constant HA = keccak256("header A");
    bytes32 internal constant HB = keccak256("header B");

    function _proposal(address signer, uint64 slot, bytes32 hh) internal view returns (bytes memory) {
        return sig(key(signer), inbox.proposalDigest(slot, hh));
    }

    function test_equivocationSlashesOnce() public {
        address p = registry.proposerForSlot(SLOT);
        bytes memory sa = _proposal(p, SLOT, HA);
        bytes memory sb = _proposal(p, SLOT, HB);
        uint64 e = registry.currentEpoch();
        address reporter = address(0xBEEF);

        vm.expectEmit(true, true, true, true, address(inbox));
        emit EquivocationReported(SLOT, p, reporter, HA, HB, MIN_BOND);
        vm.prank(reporter);
        uint256 burned = inbox.reportEquivocation(SLOT, HA, sa, HB, sb);
        assertEq(burned, MIN_BOND);
        assertEq(registry.totalBurned(), MIN_BOND);
        assertEq(reporter.balance, 0);
        (uint256 bond, ProposerRegistry.Status st,, uint64 exitEpoch,) = registry.proposerInfo(p);
        assertEq(bond, 0);
        assertTrue(st == ProposerRegistry.Status.Slashed);
        assertEq(exitEpoch, e + 2);
        assertTrue(registry.isProposer(p, e + 1));
        assertFalse(registry.isProposer(p, e + 2));

        // once only, whatever the evidence
        bytes memory sc = _proposal(p, SLOT, keccak256("header C"));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadySlashed.selector, p));
        inbox.reportEquivocation(SLOT, HA, sa, keccak256("header C"), sc);
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

    function test_equivocationWithPostedHeaderAsEvidence() public {
        PostedHeader memory posted = item(SLOT, 1, bytes32(0));
        inbox.postHeaders(one(posted));
        address p = posted.header.proposer;
        bytes32 other = keccak256("other header");
        inbox.reportEquivocation(SLOT, inbox.hashHeader(posted.header), posted.proposalSignature, other, _proposal(p, SLOT, other));
        (, ProposerRegistry.Status st,,,) = registry.proposerInfo(p);
        assertTrue(st == ProposerRegistry.Status.Slashed);
    }

    function test_slashWhileExitingKeepsExitEpoch() public {
        address p = registry.proposerForSlot(SLOT);
        vm.prank(p);
        registry.requestExit();
        (,,, uint64 exitEpoch,) = registry.proposerInfo(p);
        inbox.reportEquivocation(SLOT, HA, _proposal(p, SLOT, HA), HB, _proposal(p, SLOT, HB));
        (uint256 bond, ProposerRegistry.Status st,, uint64 exitEpoch2,) = registry.proposerInfo(p);
        assertEq(bond, 0);
        assertTrue(st == ProposerRegistry.Status.Slashed);
        assertEq(exitEpoch2, exitEpoch);
        assertEq(registry.proposerSetSizeAt(exitEpoch), NUM_GENESIS - 1);
    }

    function test_revert_sameHeaderHash() public {
        address p = registry.proposerForSlot(SLOT);
        bytes memory sa = _proposal(p, SLOT, HA);
        vm.expectRevert(IPbsErrors.SameHeaderHash.selector);
        inbox.reportEquivocation(SLOT, HA, sa, HA, sa);
    }

    function test_revert_differentSigners() public {
        address p = registry.proposerForSlot(SLOT);
        address q = genesisProposers[0] == p ? genesisProposers[1] : genesisProposers[0];
        bytes memory sa = _proposal(p, SLOT, HA);
        bytes memory sb = _proposal(q, SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.DifferentSigners.selector, p, q));
        inbox.reportEquivocation(SLOT, HA, sa, HB, sb);
    }

    function test_revert_badSignature() public {
        address p = registry.proposerForSlot(SLOT);
        bytes memory sa = _proposal(p, SLOT, HA);
        vm.expectRevert(IPbsErrors.BadProposerSignature.selector);
        inbox.reportEquivocation(SLOT, HA, sa, HB, new bytes(65));
    }

    function test_revert_signaturesForOtherSlot() public {
        address p = registry.proposerForSlot(SLOT);
        bytes memory sa = _proposal(p, SLOT, HA);
        bytes memory sb = _proposal(p, SLOT + 1, HB); // recovers to some other address for SLOT
        vm.expectRevert();
        inbox.reportEquivocation(SLOT, HA, sa, HB, sb);
        (, ProposerRegistry.Status st,,,) = registry.proposerInfo(p);
        assertTrue(st == ProposerRegistry.Status.Active);
    }

    function test_revert_notScheduledProposer() public {
        address p = registry.proposerForSlot(SLOT);
        address q = genesisProposers[0] == p ? genesisProposers[1] : genesisProposers[0];
        bytes memory sa = _proposal(q, SLOT, HA);
        bytes memory sb = _proposal(q, SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotScheduledProposer.selector, SLOT, p, q));
        inbox.reportEquivocation(SLOT, HA, sa, HB, sb);
    }

    function test_revert_notBondedAfterWithdrawal() public {
        address p = registry.proposerForSlot(SLOT);
        vm.prank(p);
        registry.requestExit();
        (,,,, uint64 unlockAt) = registry.proposerInfo(p);
        vm.warp(unlockAt);
        vm.prank(p);
        registry.withdrawBond();
        bytes memory sa = _proposal(p, SLOT, HA);
        bytes memory sb = _proposal(p, SLOT, HB);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotBonded.selector, p));
        inbox.reportEquivocation(SLOT, HA, sa, HB, sb);
    }

    function testFuzz_anyTwoDistinctHashesSlash(bytes32 a, bytes32 b, uint64 slot) public {
        vm.assume(a != b);
        slot = uint64(bound(slot, 0, 20_000));
        address p = registry.proposerForSlot(slot);
        inbox.reportEquivocation(slot, a, _proposal(p, slot, a), b, _proposal(p, slot, b));
        assertEq(registry.totalBurned(), MIN_BOND);
    }
}
