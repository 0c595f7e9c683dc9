// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IPbsErrors} from "../src/PbsTypes.sol";
import {ProposerRegistry} from "../src/ProposerRegistry.sol";

contract ProposerRegistryTest is Fixture {
    address[] internal model;

    function _set(uint64 epoch) internal view returns (address[] memory) {
        return registry.proposerSetAt(epoch);
    }

    function _newProposer(uint256 i) internal returns (address a) {
        a = vm.addr(0xC000 + i);
        keyOf[a] = 0xC000 + i;
        vm.deal(a, 10 ether);
    }

    function _join(address a) internal {
        vm.prank(a);
        registry.join{value: MIN_BOND}();
    }

    function _exit(address a) internal {
        vm.prank(a);
        registry.requestExit();
    }

    function _nextEpoch() internal {
        uint64 e = registry.currentEpoch() + 1;
        vm.warp(registry.epochStartMs(e) / 1000 + 1);
        assertEq(registry.currentEpoch(), e);
    }

    // ------------------------------------------------------------------ construction / wiring

    function test_genesisSetInOrderFromEpochZero() public view {
        assertEq(_set(0), genesisProposers);
        assertEq(_set(registry.currentEpoch() + 10), genesisProposers);
        assertEq(registry.proposerSetSizeAt(0), NUM_GENESIS);
        assertEq(address(registry).balance, MIN_BOND * NUM_GENESIS);
    }

    function test_constructorRejectsWrongValue() public {
        vm.expectRevert(IPbsErrors.BadConfig.selector);
        new ProposerRegistry{value: 1}(GENESIS_MS, SLOT_MS, SLOTS_PER_EPOCH, MIN_BOND, EXIT_DELAY, genesisProposers);
    }

    function test_setInboxOnceByDeployer() public {
        vm.prank(builder);
        vm.expectRevert(IPbsErrors.NotDeployer.selector);
        registry.setInbox(address(1));
        vm.expectRevert(IPbsErrors.InboxAlreadySet.selector);
        registry.setInbox(address(1));
    }

    function test_slashOnlyByInbox() public {
        vm.expectRevert(IPbsErrors.NotInbox.selector);
        registry.slash(genesisProposers[0], address(this));
    }

    // ------------------------------------------------------------------ schedule

    function test_proposerForSlotFormula() public view {
        address[] memory set = _set(0);
        (bytes32 r, uint64 recordedFor) = registry.randomnessAt(400);
        assertEq(recordedFor, 0); // only the deployment's record so far
        for (uint64 slot = 0; slot < 20_000; slot += 97) {
            uint64 e = slot / SLOTS_PER_EPOCH;
            bytes32 seed = keccak256(abi.encode(r, uint256(e)));
            assertEq(registry.seedOf(e), seed);
            address want = set[uint256(keccak256(abi.encode(seed, uint256(slot)))) % set.length];
            assertEq(registry.drawnProposerForSlot(slot), want);
            assertEq(registry.proposerForSlot(slot), want);
        }
    }

    /// @notice recordSeed: only in the first half of epoch e-1, once, stores block.prevrandao for epoch e, and is
    /// in force for e and later epochs until the next record; earlier epochs keep theirs.
    function test_recordSeedWindowAndEffect() public {
        uint64 e = registry.currentEpoch(); // 312, slot 10_000 = 312 * 32 + 16: the second half
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotInSeedWindow.selector, uint64(10_000)));
        registry.recordSeed();
        bytes32 before = registry.seedOf(e + 2);
        bytes32 seedNow = registry.seedOf(e + 1);

        _nextEpoch(); // 313, first slot
        vm.prevrandao(uint256(keccak256("randao 314")));
        assertFalse(registry.seedIsFinal(e + 2));
        vm.prank(address(0xD00D));
        assertEq(registry.recordSeed(), e + 2);
        assertEq(registry.seedRecordCount(), 2);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.SeedAlreadyRecorded.selector, e + 2));
        registry.recordSeed();
        assertEq(registry.seedOf(e + 1), seedNow); // the current epoch's seed is untouched
        assertTrue(registry.seedOf(e + 2) != before, "new seed in force");
        assertEq(registry.seedOf(e + 2), keccak256(abi.encode(keccak256("randao 314"), uint256(e + 2))));
        assertEq(registry.seedOf(e + 5), keccak256(abi.encode(keccak256("randao 314"), uint256(e + 5))));

        // last slot of the window, then the first after it
        uint64 lastInWindow = (e + 1) * SLOTS_PER_EPOCH + SLOTS_PER_EPOCH / 2 - 1;
        warpToSlot(lastInWindow);
        assertFalse(registry.seedIsFinal(e + 2));
        warpToSlot(lastInWindow + 1);
        assertTrue(registry.seedIsFinal(e + 2));
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotInSeedWindow.selector, lastInWindow + 1));
        registry.recordSeed();
    }

    /// @notice Several records over skipped epochs: the lookup (binary search) finds the latest record <= e.
    function test_seedHistoryLookup() public {
        uint64 e0 = registry.currentEpoch();
        uint64[] memory recorded = new uint64[](5);
        for (uint256 i = 0; i < 5; ++i) {
            uint64 e = e0 + 1 + uint64(3 * i); // record every third epoch
            warpToSlot(e * SLOTS_PER_EPOCH);
            vm.prevrandao(1000 + i);
            recorded[i] = registry.recordSeed();
            assertEq(recorded[i], e + 1);
        }
        (bytes32 r, uint64 at) = registry.randomnessAt(e0);
        assertEq(at, 0);
        for (uint256 i = 0; i < 5; ++i) {
            for (uint64 d = 0; d < 3; ++d) {
                (r, at) = registry.randomnessAt(recorded[i] + d);
                assertEq(at, recorded[i]);
                assertEq(r, bytes32(uint256(1000 + i)));
            }
        }
        (r, at) = registry.randomnessAt(recorded[0] - 1);
        assertEq(at, 0);
    }

    function test_slashedProposerSlotsAreEmpty() public {
        uint64 slot = 9_990;
        address p = registry.proposerForSlot(slot);
        vm.prank(address(inbox));
        registry.slash(p, address(this));
        assertEq(registry.proposerForSlot(slot), address(0));
        assertEq(registry.drawnProposerForSlot(slot), p);
    }

    function test_currentSlotAndEpoch() public {
        assertEq(registry.currentSlot(), uint256(10_000));
        assertEq(registry.currentEpoch(), uint256(312));
        vm.warp(GENESIS_MS / 1000 - 5);
        assertEq(registry.currentSlot(), uint256(0));
    }

    // ------------------------------------------------------------------ join

    function test_joinActivatesAfterTwoEpochs() public {
        address p = _newProposer(1);
        uint64 e = registry.currentEpoch();
        _join(p);
        assertEq(_set(e), genesisProposers);
        assertEq(_set(e + 1), genesisProposers);
        address[] memory want = new address[](5);
        for (uint256 i = 0; i < 4; ++i) want[i] = genesisProposers[i];
        want[4] = p;
        assertEq(_set(e + 2), want);
        assertEq(_set(e + 50), want);
        assertFalse(registry.isProposer(p, e + 1));
        assertTrue(registry.isProposer(p, e + 2));
        (uint256 bond, ProposerRegistry.Status st, uint64 act,,) = registry.proposerInfo(p);
        assertEq(bond, MIN_BOND);
        assertTrue(st == ProposerRegistry.Status.Active);
        assertEq(act, e + 2);
        // the schedule of the current and next epoch does not change when time passes
        _nextEpoch();
        assertEq(_set(e + 1), genesisProposers);
        assertEq(_set(e + 2), want);
    }

    function test_revert_joinBondTooSmall() public {
        address p = _newProposer(1);
        vm.prank(p);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.BondTooSmall.selector, MIN_BOND - 1, MIN_BOND));
        registry.join{value: MIN_BOND - 1}();
    }

    function test_revert_joinTwice() public {
        vm.deal(genesisProposers[0], 10 ether);
        vm.prank(genesisProposers[0]);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AlreadyRegistered.selector, genesisProposers[0]));
        registry.join{value: MIN_BOND}();
    }

    function test_revert_setFull() public {
        for (uint256 i = NUM_GENESIS; i < 64; ++i) _join(_newProposer(i));
        address extra = _newProposer(99);
        vm.prank(extra);
        vm.expectRevert(IPbsErrors.SetFull.selector);
        registry.join{value: MIN_BOND}();
        assertEq(registry.proposerSetSizeAt(registry.currentEpoch() + 2), 64);
    }

    // ------------------------------------------------------------------ exit

    function test_exitSwapAndPopAfterTwoEpochs() public {
        uint64 e = registry.currentEpoch();
        _exit(genesisProposers[1]); // [A,B,C,D] -> [A,D,C]
        address[] memory want = new address[](3);
        want[0] = genesisProposers[0];
        want[1] = genesisProposers[3];
        want[2] = genesisProposers[2];
        assertEq(_set(e + 1), genesisProposers);
        assertEq(_set(e + 2), want);
        assertTrue(registry.isProposer(genesisProposers[1], e + 1));
        assertFalse(registry.isProposer(genesisProposers[1], e + 2));
        (address[] memory latest, uint64 eff) = registry.latestSet();
        assertEq(latest, want);
        assertEq(eff, e + 2);
    }

    function test_changesInOneEpochAmendOneSnapshot() public {
        uint64 e = registry.currentEpoch();
        address x = _newProposer(1);
        address y = _newProposer(2);
        _join(x); // [A,B,C,D,X]
        _exit(genesisProposers[0]); // [X,B,C,D]
        _join(y); // [X,B,C,D,Y]
        _exit(x); // [Y,B,C,D]
        address[] memory want = new address[](4);
        want[0] = y;
        want[1] = genesisProposers[1];
        want[2] = genesisProposers[2];
        want[3] = genesisProposers[3];
        assertEq(_set(e + 1), genesisProposers);
        assertEq(_set(e + 2), want);
        // x joined and left before activation: never scheduled; it may withdraw after the delay
        assertFalse(registry.isProposer(x, e + 2));
    }

    function test_historyIsKeptAcrossEpochs() public {
        uint64 e0 = registry.currentEpoch();
        address x = _newProposer(1);
        _join(x); // epoch e0+2: [A,B,C,D,X]
        _nextEpoch();
        _exit(genesisProposers[0]); // epoch e0+3: [X,B,C,D]
        _nextEpoch();
        _nextEpoch();
        _nextEpoch();
        assertEq(_set(e0 + 1), genesisProposers);
        assertEq(registry.proposerSetSizeAt(e0 + 2), 5);
        assertEq(_set(e0 + 2)[4], x);
        assertEq(_set(e0 + 3)[0], x);
        assertEq(registry.proposerSetSizeAt(e0 + 3), 4);
        assertEq(_set(0), genesisProposers);
    }

    function test_revert_exitNotActive() public {
        address p = _newProposer(1);
        vm.prank(p);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotActive.selector, p));
        registry.requestExit();
    }

    function test_withdrawBondAfterExitDelay() public {
        address p = genesisProposers[2];
        vm.prank(p);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.NotExiting.selector, p));
        registry.withdrawBond();

        uint64 exitEpoch = registry.currentEpoch() + 2;
        _exit(p);
        uint256 unlockAt = (registry.epochStartMs(exitEpoch) + 999) / 1000 + EXIT_DELAY;
        (,,, uint64 ee, uint64 wat) = registry.proposerInfo(p);
        assertEq(ee, exitEpoch);
        assertEq(wat, unlockAt);

        vm.warp(unlockAt - 1);
        vm.prank(p);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.ExitDelayNotOver.selector, unlockAt));
        registry.withdrawBond();

        vm.warp(unlockAt);
        uint256 before = p.balance;
        vm.prank(p);
        registry.withdrawBond();
        assertEq(p.balance, before + MIN_BOND);
        (uint256 bond, ProposerRegistry.Status st,,,) = registry.proposerInfo(p);
        assertEq(bond, 0);
        assertTrue(st == ProposerRegistry.Status.None);

        // may join again, appended at the end
        vm.deal(p, 1 ether);
        _join(p);
        address[] memory s = _set(registry.currentEpoch() + 2);
        assertEq(s[s.length - 1], p);
    }

    // ------------------------------------------------------------------ fuzz: ordering model

    /// @notice Random join/exit sequences over several epochs: every epoch's set equals a swap-and-pop model
    /// applied with a two-epoch delay, and sets already fixed never change.
    function testFuzz_orderingMatchesModel(uint256 seed) public {
        for (uint256 i = 0; i < NUM_GENESIS; ++i) model.push(genesisProposers[i]);
        address[] memory pool = new address[](12);
        for (uint256 i = 0; i < pool.length; ++i) pool[i] = _newProposer(i);
        uint64 e0 = registry.currentEpoch();
        address[][] memory expected = new address[][](6);
        for (uint256 step = 0; step < 6; ++step) {
            uint64 e = registry.currentEpoch();
            address[] memory fixedNext = _set(e + 1);
            for (uint256 k = 0; k < 4; ++k) {
                seed = uint256(keccak256(abi.encode(seed, step, k)));
                address who = pool[seed % pool.length];
                (, ProposerRegistry.Status st,,,) = registry.proposerInfo(who);
                if (st == ProposerRegistry.Status.None) {
                    vm.deal(who, 1 ether);
                    _join(who);
                    model.push(who);
                } else if (st == ProposerRegistry.Status.Active) {
                    _exit(who);
                    for (uint256 j = 0; j < model.length; ++j) {
                        if (model[j] == who) {
                            model[j] = model[model.length - 1];
                            model.pop();
                            break;
                        }
                    }
                }
            }
            assertEq(_set(e + 1), fixedNext);
            assertEq(_set(e + 2), model);
            expected[step] = _set(e + 2);
            _nextEpoch();
        }
        for (uint256 step = 0; step < 6; ++step) assertEq(_set(e0 + 2 + uint64(step)), expected[step]);
    }
}
