// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IPbsErrors} from "./PbsTypes.sol";

/// @title ProposerRegistry
/// @notice Bonded proposer set with an epoch-tagged, append-only history, and the L1 randomness that seeds each
/// epoch's schedule (protocol version 2), so that the proposer of every slot is fixed before anyone can grind it.
///
/// Set ordering rule (the C# side reads it through `proposerSetAt`):
///  * The registry keeps one *latest* ordered list. `join()` appends to its end; removal (`requestExit`,
///    `slash`) moves the list's last element into the removed element's position and pops the end
///    (swap-and-pop). Changes are applied in transaction order.
///  * Every change made while the current epoch is `E` is tagged with effective epoch `E + ACTIVATION_DELAY_EPOCHS`.
///    The set of epoch `e` is the latest list as it stood after all changes tagged `<= e`, i.e. changes for the same
///    future epoch amend the same pending snapshot. Because tags never decrease, the sets of epochs `<= E + 1`
///    can no longer change during epoch `E`.
///  * drawnProposerForSlot(slot) = set[uint256(keccak256(abi.encode(seedOf(e), uint256(slot)))) % set.length] with
///    e = slot / SLOTS_PER_EPOCH, set = proposerSetAt(e); address(0) when the set is empty.
///    proposerForSlot(slot) is the same, except address(0) when the drawn proposer is slashed.
///  * seedOf(e) = keccak256(abi.encode(R, uint256(e))), R = the randomness of the latest record at an epoch <= e.
///    recordSeed() (anyone) records block.prevrandao for epoch currentEpoch() + 1, only during the first half of
///    the current epoch (after the set of that epoch is final); the constructor records epoch 0.
///
/// Storage: per list position `i` a checkpoint history (epoch -> address) and one history for the length,
/// so each change costs O(1) writes and each lookup a bounded binary search (O(1) for recent epochs).
contract ProposerRegistry is IPbsErrors, ReentrancyGuardTransient {
    using Checkpoints for Checkpoints.Trace208;

    uint64 public constant ACTIVATION_DELAY_EPOCHS = 2;
    uint256 public constant MAX_SET_SIZE = 64;

    enum Status {
        None, // never joined, or bond withdrawn (may join again)
        Active, // in the latest list
        Exiting, // removed from the latest list, bond locked until `withdrawableAt`
        Slashed // bond burned; may never join again
    }

    struct Proposer {
        uint96 bond;
        Status status;
        uint8 indexPlusOne; // position in the latest list + 1 (0 = not in it)
        uint48 activationEpoch; // first epoch of the last join
        uint48 exitEpoch; // first epoch without it after requestExit / slash
        uint48 withdrawableAt; // unix seconds, after requestExit
    }

    uint64 public immutable GENESIS_MS;
    uint64 public immutable SLOT_MS;
    uint64 public immutable SLOTS_PER_EPOCH;
    uint256 public immutable MIN_BOND;
    /// @notice Seconds the bond stays locked after the start of the exit epoch (evidence window for equivocations).
    uint64 public immutable EXIT_DELAY;
    address public immutable DEPLOYER;

    address public inbox;
    uint256 public totalBurned;

    mapping(address => Proposer) private _proposers;
    Checkpoints.Trace208 private _length;
    mapping(uint256 => Checkpoints.Trace208) private _entries;

    struct SeedRecord {
        uint64 epoch;
        bytes32 randomness;
    }

    /// @dev ascending epochs (a record is only ever made for currentEpoch() + 1)
    SeedRecord[] private _seeds;

    event InboxSet(address inbox);
    event ProposerJoined(address indexed proposer, uint256 bond, uint64 activationEpoch);
    event ProposerExitRequested(address indexed proposer, uint64 exitEpoch, uint64 withdrawableAt);
    event BondWithdrawn(address indexed proposer, uint256 amount);
    event ProposerSlashed(address indexed proposer, address indexed reporter, uint256 burned, uint64 exitEpoch);
    event SeedRecorded(uint64 indexed epoch, bytes32 randomness, address recorder);

    /// @param genesisMs L2 genesis (unix ms): slot s starts at genesisMs + s * slotMs
    /// @param slotMs slot length in ms (default 2000)
    /// @param slotsPerEpoch slots per epoch (default 32)
    /// @param minBond minimum bond in wei for join()
    /// @param exitDelay seconds the bond stays locked after the exit epoch starts
    /// @param genesisProposers proposers active from epoch 0, in this order; msg.value must be minBond * length
    constructor(
        uint64 genesisMs,
        uint64 slotMs,
        uint64 slotsPerEpoch,
        uint256 minBond,
        uint64 exitDelay,
        address[] memory genesisProposers
    ) payable {
        if (slotMs == 0 || slotsPerEpoch == 0 || minBond == 0 || minBond > type(uint96).max) revert BadConfig();
        if (genesisProposers.length > MAX_SET_SIZE || msg.value != minBond * genesisProposers.length) {
            revert BadConfig();
        }
        GENESIS_MS = genesisMs;
        SLOT_MS = slotMs;
        SLOTS_PER_EPOCH = slotsPerEpoch;
        MIN_BOND = minBond;
        EXIT_DELAY = exitDelay;
        DEPLOYER = msg.sender;
        _seeds.push(SeedRecord(0, bytes32(block.prevrandao)));
        emit SeedRecorded(0, bytes32(block.prevrandao), msg.sender);
        for (uint256 i = 0; i < genesisProposers.length; ++i) {
            address p = genesisProposers[i];
            if (p == address(0)) revert ZeroAddress();
            if (_proposers[p].status != Status.None) revert AlreadyRegistered(p);
            _add(p, 0);
            _proposers[p].bond = uint96(minBond);
            _proposers[p].status = Status.Active;
            emit ProposerJoined(p, minBond, 0);
        }
    }

    /// @notice One-time wiring by the deployer.
    function setInbox(address inbox_) external {
        if (msg.sender != DEPLOYER) revert NotDeployer();
        if (inbox != address(0)) revert InboxAlreadySet();
        if (inbox_ == address(0)) revert ZeroAddress();
        inbox = inbox_;
        emit InboxSet(inbox_);
    }

    // ------------------------------------------------------------------ time

    function currentSlot() public view returns (uint64) {
        uint256 nowMs = block.timestamp * 1000;
        if (nowMs < GENESIS_MS) return 0;
        return uint64((nowMs - GENESIS_MS) / SLOT_MS);
    }

    function currentEpoch() public view returns (uint64) {
        return currentSlot() / SLOTS_PER_EPOCH;
    }

    function epochStartMs(uint64 epoch) public view returns (uint256) {
        return uint256(GENESIS_MS) + uint256(epoch) * SLOTS_PER_EPOCH * SLOT_MS;
    }

    // ------------------------------------------------------------------ membership

    /// @notice Bond at least MIN_BOND; active from epoch currentEpoch() + ACTIVATION_DELAY_EPOCHS.
    function join() external payable {
        if (msg.value < MIN_BOND) revert BondTooSmall(msg.value, MIN_BOND);
        if (msg.value > type(uint96).max) revert BadConfig();
        Proposer storage p = _proposers[msg.sender];
        if (p.status != Status.None) revert AlreadyRegistered(msg.sender);
        uint48 eff = _effectiveEpoch();
        _add(msg.sender, eff);
        p.bond = uint96(msg.value);
        p.status = Status.Active;
        p.activationEpoch = eff;
        p.exitEpoch = 0;
        p.withdrawableAt = 0;
        emit ProposerJoined(msg.sender, msg.value, eff);
    }

    /// @notice Leave the set from epoch currentEpoch() + ACTIVATION_DELAY_EPOCHS; the bond is withdrawable
    /// EXIT_DELAY seconds after that epoch starts.
    function requestExit() external {
        Proposer storage p = _proposers[msg.sender];
        if (p.status != Status.Active) revert NotActive(msg.sender);
        uint48 eff = _effectiveEpoch();
        _remove(msg.sender, eff);
        p.status = Status.Exiting;
        p.exitEpoch = eff;
        uint256 unlockAt = (epochStartMs(eff) + 999) / 1000 + EXIT_DELAY;
        p.withdrawableAt = uint48(unlockAt);
        emit ProposerExitRequested(msg.sender, eff, uint64(unlockAt));
    }

    function withdrawBond() external nonReentrant {
        Proposer storage p = _proposers[msg.sender];
        if (p.status != Status.Exiting) revert NotExiting(msg.sender);
        if (block.timestamp < p.withdrawableAt) revert ExitDelayNotOver(p.withdrawableAt);
        uint256 amount = p.bond;
        p.bond = 0;
        p.status = Status.None;
        emit BondWithdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Called by the Inbox on proven equivocation. Burns the whole bond (it stays locked in this contract
    /// forever and is counted in `totalBurned`; paying it to the reporter would let a proposer report itself
    /// and recover it) and removes the proposer from epoch currentEpoch() + ACTIVATION_DELAY_EPOCHS on.
    function slash(address proposer, address reporter) external returns (uint256 amount) {
        if (msg.sender != inbox) revert NotInbox();
        Proposer storage p = _proposers[proposer];
        if (p.status == Status.Slashed) revert AlreadySlashed(proposer);
        if (p.status == Status.None) revert NotBonded(proposer);
        uint48 exitEpoch = p.exitEpoch;
        if (p.status == Status.Active) {
            exitEpoch = _effectiveEpoch();
            _remove(proposer, exitEpoch);
            p.exitEpoch = exitEpoch;
        }
        amount = p.bond;
        p.bond = 0;
        p.status = Status.Slashed;
        totalBurned += amount;
        emit ProposerSlashed(proposer, reporter, amount, exitEpoch);
    }

    // ------------------------------------------------------------------ schedule randomness

    /// @notice Records block.prevrandao as the randomness of epoch currentEpoch() + 1. Only during the first half of
    /// the current epoch (slot-in-epoch * 2 < SLOTS_PER_EPOCH), once per epoch; anyone may call it.
    function recordSeed() external returns (uint64 epoch) {
        uint64 slot = currentSlot();
        if (2 * (slot % SLOTS_PER_EPOCH) >= SLOTS_PER_EPOCH) revert NotInSeedWindow(slot);
        epoch = slot / SLOTS_PER_EPOCH + 1;
        if (_seeds[_seeds.length - 1].epoch >= epoch) revert SeedAlreadyRecorded(epoch);
        _seeds.push(SeedRecord(epoch, bytes32(block.prevrandao)));
        emit SeedRecorded(epoch, bytes32(block.prevrandao), msg.sender);
    }

    /// @notice The schedule seed of `epoch`: keccak256(abi.encode(R, uint256(epoch))), R of the latest record <= epoch.
    /// Final once the record window of `epoch` has closed (see seedIsFinal).
    function seedOf(uint64 epoch) public view returns (bytes32) {
        return keccak256(abi.encode(_randomnessAt(epoch), uint256(epoch)));
    }

    /// @notice True once nothing can change seedOf(epoch) any more: the first half of epoch - 1 is over
    /// (epoch 0: always).
    function seedIsFinal(uint64 epoch) external view returns (bool) {
        if (epoch == 0) return true;
        uint256 s = currentSlot();
        uint256 windowEnd = uint256(epoch - 1) * SLOTS_PER_EPOCH + (SLOTS_PER_EPOCH + 1) / 2; // first slot after it
        return s >= windowEnd;
    }

    /// @notice The recorded randomness in force for `epoch` and the epoch it was recorded for.
    function randomnessAt(uint64 epoch) external view returns (bytes32 randomness, uint64 recordedFor) {
        uint256 i = _seedIndex(epoch);
        return (_seeds[i].randomness, _seeds[i].epoch);
    }

    function seedRecordCount() external view returns (uint256) {
        return _seeds.length;
    }

    // ------------------------------------------------------------------ views

    /// @notice The ordered set the schedule uses for `epoch`.
    function proposerSetAt(uint64 epoch) external view returns (address[] memory set) {
        uint48 key = _key(epoch);
        uint256 n = _lookup(_length, key);
        set = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            set[i] = address(uint160(_lookup(_entries[i], key)));
        }
    }

    function proposerSetSizeAt(uint64 epoch) external view returns (uint256) {
        return _lookup(_length, _key(epoch));
    }

    /// @notice The scheduled proposer of `slot`: address(0) when its epoch has an empty set or the drawn proposer
    /// is slashed (a slashed proposer's remaining slots are empty at once; the inbox refuses its headers).
    function proposerForSlot(uint64 slot) external view returns (address p) {
        p = drawnProposerForSlot(slot);
        if (p != address(0) && _proposers[p].status == Status.Slashed) return address(0);
    }

    /// @notice proposerForSlot of each of `slots` (one call per batch for the inbox; epoch lookups are shared).
    function proposersForSlots(uint64[] calldata slots) external view returns (address[] memory out) {
        uint256 n = slots.length;
        out = new address[](n);
        uint64 epoch = type(uint64).max;
        uint48 key;
        uint256 size;
        bytes32 seed;
        for (uint256 i = 0; i < n; ++i) {
            uint64 slot = slots[i];
            uint64 e = slot / SLOTS_PER_EPOCH;
            if (e != epoch) {
                epoch = e;
                key = _key(e);
                size = _lookup(_length, key);
                if (size != 0) seed = seedOf(e);
            }
            if (size == 0) continue;
            uint256 idx = uint256(keccak256(abi.encode(seed, uint256(slot)))) % size;
            address p = address(uint160(_lookup(_entries[idx], key)));
            if (_proposers[p].status != Status.Slashed) out[i] = p;
        }
    }

    /// @notice The proposer the schedule draws for `slot`, slashed or not; address(0) when the set is empty.
    function drawnProposerForSlot(uint64 slot) public view returns (address) {
        uint64 epoch = slot / SLOTS_PER_EPOCH;
        uint48 key = _key(epoch);
        uint256 n = _lookup(_length, key);
        if (n == 0) return address(0);
        uint256 idx = uint256(keccak256(abi.encode(seedOf(epoch), uint256(slot)))) % n;
        return address(uint160(_lookup(_entries[idx], key)));
    }

    function isProposer(address who, uint64 epoch) external view returns (bool) {
        if (who == address(0)) return false;
        uint48 key = _key(epoch);
        uint256 n = _lookup(_length, key);
        for (uint256 i = 0; i < n; ++i) {
            if (address(uint160(_lookup(_entries[i], key))) == who) return true;
        }
        return false;
    }

    function proposerInfo(address who)
        external
        view
        returns (
            uint256 bond,
            Status status,
            uint64 activationEpoch,
            uint64 exitEpoch,
            uint64 withdrawableAt
        )
    {
        Proposer storage p = _proposers[who];
        return (p.bond, p.status, p.activationEpoch, p.exitEpoch, p.withdrawableAt);
    }

    /// @notice The latest (possibly still pending) list and the epoch it takes effect.
    function latestSet() external view returns (address[] memory set, uint64 effectiveEpoch) {
        (, uint48 k, uint208 n) = _length.latestCheckpoint();
        set = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            set[i] = address(uint160(_entries[i].latest()));
        }
        effectiveEpoch = k;
    }

    // ------------------------------------------------------------------ internals

    function _effectiveEpoch() private view returns (uint48) {
        uint256 e = uint256(currentEpoch()) + ACTIVATION_DELAY_EPOCHS;
        if (e > type(uint48).max - 1) revert EpochOutOfRange(e);
        return uint48(e);
    }

    function _randomnessAt(uint64 epoch) private view returns (bytes32) {
        return _seeds[_seedIndex(epoch)].randomness;
    }

    /// @dev index of the latest record with epoch <= `epoch` (record 0 is epoch 0, so one always exists)
    function _seedIndex(uint64 epoch) private view returns (uint256) {
        uint256 hi = _seeds.length - 1;
        if (_seeds[hi].epoch <= epoch) return hi;
        uint256 lo = 0; // invariant: _seeds[lo].epoch <= epoch < _seeds[hi].epoch
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_seeds[mid].epoch <= epoch) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    function _key(uint64 epoch) private pure returns (uint48) {
        return epoch > type(uint48).max ? type(uint48).max : uint48(epoch);
    }

    /// @dev value of the last checkpoint with key <= `key`; O(1) when `key` is at or after the latest change.
    function _lookup(Checkpoints.Trace208 storage t, uint48 key) private view returns (uint256) {
        (bool exists, uint48 k, uint208 v) = t.latestCheckpoint();
        if (!exists) return 0;
        if (k <= key) return v;
        return t.upperLookupRecent(key);
    }

    function _add(address who, uint48 eff) private {
        uint256 n = _length.latest();
        if (n >= MAX_SET_SIZE) revert SetFull();
        _entries[n].push(eff, uint208(uint160(who)));
        _length.push(eff, uint208(n + 1));
        _proposers[who].indexPlusOne = uint8(n + 1);
    }

    function _remove(address who, uint48 eff) private {
        uint256 n = _length.latest();
        uint256 i = uint256(_proposers[who].indexPlusOne) - 1;
        uint256 last = n - 1;
        if (i != last) {
            address moved = address(uint160(_entries[last].latest()));
            _entries[i].push(eff, uint208(uint160(moved)));
            _proposers[moved].indexPlusOne = uint8(i + 1);
        }
        // position `last` is beyond the new length from `eff` on; its value there is never read.
        _length.push(eff, uint208(last));
        _proposers[who].indexPlusOne = 0;
    }
}
