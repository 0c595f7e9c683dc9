// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IPbsErrors, Settlement} from "./PbsTypes.sol";

/// @title BuilderEscrow (protocol version 2)
/// @notice Builder collateral, allocated per relay. Only the Inbox moves collateral out (`settle`), crediting the
/// proposer's claimable earnings (pull payment: the Inbox never sends ether, so a reverting payee cannot block a
/// batch).
///
/// Accounting per (builder, relay) allocation:
///  * `balanceOf(builder, relay)`: available collateral at that relay, EXCLUDING amounts requested for withdrawal.
///    The relay caps bids by this number (less what the builder already owes there for won, not yet posted slots).
///    No other relay's settlement can touch it.
///  * `pendingOf(builder, relay)`: requested for withdrawal, still held and still seizable by `settle`,
///    withdrawable from `withdrawalReadyAt(builder, relay)`.
///  * `settle` takes from the available amount first, then from the pending amount, and NEVER reverts for lack of
///    money: what the allocation cannot cover is recorded as the builder's shortfall towards the proposer
///    (`shortfallOf`), and the builder is barred (`isBarred`) until it pays every shortfall (`payShortfall`).
contract BuilderEscrow is IPbsErrors, ReentrancyGuardTransient {
    struct Account {
        uint128 available;
        uint128 pending;
    }

    uint64 public immutable WITHDRAWAL_DELAY;
    address public immutable DEPLOYER;
    address public inbox;

    mapping(address builder => mapping(address relay => Account)) private _accounts;
    mapping(address builder => mapping(address relay => uint64)) private _readyAt;
    /// @dev unclaimed and claimed earnings share a slot, so that a claim does not zero it (the next credit then
    /// costs a non-zero-to-non-zero write instead of a fresh slot)
    struct Earnings {
        uint128 unclaimed;
        uint128 claimed;
    }

    mapping(address => Earnings) private _earnings;
    /// @notice What `builder` still owes `proposer` from settlements its allocation could not cover.
    mapping(address builder => mapping(address proposer => uint256)) public shortfallOf;
    /// @notice Sum of `builder`'s shortfalls; non-zero = barred.
    mapping(address builder => uint256) public totalShortfallOf;

    event InboxSet(address inbox);
    event Deposited(address indexed builder, address indexed relay, address from, uint256 amount);
    event WithdrawalRequested(
        address indexed builder, address indexed relay, uint256 amount, uint256 totalPending, uint64 readyAt
    );
    event Withdrawn(address indexed builder, address indexed relay, uint256 amount);
    event Shortfall(
        address indexed builder, address indexed relay, address indexed proposer, uint256 price, uint256 missing
    );
    event ShortfallPaid(address indexed builder, address indexed proposer, uint256 amount, uint256 remaining);
    event EarningsClaimed(address indexed payee, address to, uint256 amount);

    constructor(uint64 withdrawalDelay) {
        if (withdrawalDelay == 0) revert BadConfig();
        WITHDRAWAL_DELAY = withdrawalDelay;
        DEPLOYER = msg.sender;
    }

    function setInbox(address inbox_) external {
        if (msg.sender != DEPLOYER) revert NotDeployer();
        if (inbox != address(0)) revert InboxAlreadySet();
        if (inbox_ == address(0)) revert ZeroAddress();
        inbox = inbox_;
        emit InboxSet(inbox_);
    }

    // ------------------------------------------------------------------ builders

    /// @notice Adds msg.value to the caller's allocation at `relay`.
    function deposit(address relay) external payable {
        _deposit(msg.sender, relay);
    }

    function depositFor(address builder, address relay) external payable {
        if (builder == address(0)) revert ZeroAddress();
        _deposit(builder, relay);
    }

    /// @notice Moves `amount` of the allocation at `relay` from available to pending and (re)starts the delay for
    /// that allocation's whole pending amount.
    function requestWithdrawal(address relay, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Account storage a = _accounts[msg.sender][relay];
        if (amount > a.available) revert AmountExceedsBalance(amount, a.available);
        a.available -= uint128(amount);
        a.pending += uint128(amount);
        uint64 readyAt = uint64(block.timestamp) + WITHDRAWAL_DELAY;
        _readyAt[msg.sender][relay] = readyAt;
        emit WithdrawalRequested(msg.sender, relay, amount, a.pending, readyAt);
    }

    /// @notice Sends the allocation's whole pending amount (less anything settled from it) once the delay is over.
    function withdraw(address relay) external nonReentrant {
        Account storage a = _accounts[msg.sender][relay];
        uint256 amount = a.pending;
        if (amount == 0) revert NoPendingWithdrawal();
        uint64 readyAt = _readyAt[msg.sender][relay];
        if (block.timestamp < readyAt) revert WithdrawalNotReady(readyAt);
        a.pending = 0;
        emit Withdrawn(msg.sender, relay, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Pays (part of) the caller's shortfall towards `proposer`: credits the proposer's earnings. The builder
    /// stays barred until its total shortfall is zero.
    function payShortfall(address proposer) external payable {
        uint256 owed = shortfallOf[msg.sender][proposer];
        if (owed == 0) revert NoShortfall(msg.sender, proposer);
        if (msg.value == 0) revert ZeroAmount();
        if (msg.value > owed) revert AmountExceedsShortfall(msg.value, owed);
        uint256 remaining = owed - msg.value;
        shortfallOf[msg.sender][proposer] = remaining;
        totalShortfallOf[msg.sender] -= msg.value;
        _credit(proposer, msg.value);
        emit ShortfallPaid(msg.sender, proposer, msg.value, remaining);
    }

    // ------------------------------------------------------------------ payees

    function claimEarnings() external {
        _claim(payable(msg.sender));
    }

    function claimEarningsTo(address payable to) external {
        if (to == address(0)) revert ZeroAddress();
        _claim(to);
    }

    // ------------------------------------------------------------------ inbox

    /// @notice Moves `amount` from `builder`'s allocation at `relay` to `proposer`'s claimable earnings. Only the
    /// Inbox. Never reverts for lack of money: the uncovered part is recorded as a shortfall (event `Shortfall`)
    /// and bars the builder. A fully covered settlement emits nothing (the Inbox's HeaderPosted is the record).
    function settle(address builder, address relay, address proposer, uint256 amount) external {
        if (msg.sender != inbox) revert NotInbox();
        _settle(builder, relay, proposer, amount);
    }

    /// @notice `settle` for each entry, in order (the Inbox calls this once per batch).
    function settleBatch(Settlement[] calldata settlements) external {
        if (msg.sender != inbox) revert NotInbox();
        uint256 n = settlements.length;
        for (uint256 i = 0; i < n; ++i) {
            Settlement calldata s = settlements[i];
            _settle(s.builder, s.relay, s.proposer, s.price);
        }
    }

    function _settle(address builder, address relay, address proposer, uint256 amount) private {
        Account storage s = _accounts[builder][relay];
        Account memory a = s;
        uint256 avail = a.available;
        uint256 paid = amount;
        if (amount <= avail) {
            s.available = uint128(avail - amount);
        } else {
            uint256 held = avail + a.pending;
            if (amount <= held) {
                s.available = 0;
                s.pending = uint128(held - amount);
            } else {
                if (held != 0) {
                    s.available = 0;
                    s.pending = 0;
                }
                paid = held;
                uint256 missing = amount - held;
                shortfallOf[builder][proposer] += missing;
                totalShortfallOf[builder] += missing;
                emit Shortfall(builder, relay, proposer, amount, missing);
            }
        }
        if (paid != 0) _credit(proposer, paid);
    }

    function _credit(address payee, uint256 amount) private {
        Earnings storage e = _earnings[payee];
        uint256 next = uint256(e.unclaimed) + amount;
        if (next > type(uint128).max) revert BadConfig(); // more wei than exists
        e.unclaimed = uint128(next);
    }

    // ------------------------------------------------------------------ views

    /// @notice Settled payments not yet claimed, per payee (proposers).
    function earningsOf(address payee) external view returns (uint256) {
        return _earnings[payee].unclaimed;
    }

    /// @notice Everything `payee` has claimed so far.
    function claimedOf(address payee) external view returns (uint256) {
        return _earnings[payee].claimed;
    }

    /// @notice Available collateral of `builder` allocated to `relay` (excludes amounts requested for withdrawal).
    function balanceOf(address builder, address relay) external view returns (uint256) {
        return _accounts[builder][relay].available;
    }

    function pendingOf(address builder, address relay) external view returns (uint256) {
        return _accounts[builder][relay].pending;
    }

    function withdrawalReadyAt(address builder, address relay) external view returns (uint64) {
        return _readyAt[builder][relay];
    }

    /// @notice True while the builder owes any shortfall: relays must refuse its bids.
    function isBarred(address builder) external view returns (bool) {
        return totalShortfallOf[builder] != 0;
    }

    // ------------------------------------------------------------------ internals

    function _deposit(address builder, address relay) private {
        if (msg.value == 0) revert ZeroAmount();
        if (relay == address(0)) revert ZeroAddress();
        Account storage a = _accounts[builder][relay];
        uint256 next = uint256(a.available) + msg.value;
        if (next > type(uint128).max) revert BadConfig();
        a.available = uint128(next);
        emit Deposited(builder, relay, msg.sender, msg.value);
    }

    function _claim(address payable to) private nonReentrant {
        Earnings storage e = _earnings[msg.sender];
        uint256 amount = e.unclaimed;
        if (amount == 0) revert NothingToClaim();
        e.unclaimed = 0;
        e.claimed += uint128(amount);
        emit EarningsClaimed(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
