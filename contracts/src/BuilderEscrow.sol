// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IPbsErrors} from "./PbsTypes.sol";

/// @title BuilderEscrow
/// @notice Builder collateral. Only the Inbox moves collateral out (`settle`), crediting the payee's
/// claimable earnings (pull payment: the Inbox never sends ether, so a reverting payee cannot block a batch).
///
/// Accounting per builder:
///  * `balanceOf(builder)`: available collateral, EXCLUDING amounts requested for withdrawal. The relay caps bids
///    by this number (less what the builder already owes for won but not yet posted slots).
///  * `pendingOf(builder)`: amount requested for withdrawal, still held and still seizable by `settle`,
///    withdrawable from `withdrawalReadyAt(builder)`.
///  * `settle` takes from the available balance first, then from the pending amount.
/// Because a bid is only accepted while it is covered by the available balance, and a withdrawal request keeps
/// the money seizable for WITHDRAWAL_DELAY seconds, every won auction can be settled as long as its header is
/// posted within WITHDRAWAL_DELAY of the win (deploy with a delay far above the relay's posting latency, e.g.
/// 1 day on a public chain).
contract BuilderEscrow is IPbsErrors, ReentrancyGuardTransient {
    struct Account {
        uint128 available;
        uint128 pending;
    }

    uint64 public immutable WITHDRAWAL_DELAY;
    address public immutable DEPLOYER;
    address public inbox;

    mapping(address => Account) private _accounts;
    mapping(address => uint64) private _readyAt;
    /// @notice Settled payments not yet claimed, per payee (proposers).
    mapping(address => uint256) public earningsOf;

    event InboxSet(address inbox);
    event Deposited(address indexed builder, address indexed from, uint256 amount);
    event WithdrawalRequested(address indexed builder, uint256 amount, uint256 totalPending, uint64 readyAt);
    event Withdrawn(address indexed builder, uint256 amount);
    event Settled(address indexed builder, address indexed to, uint256 amount);
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

    function deposit() external payable {
        _deposit(msg.sender);
    }

    function depositFor(address builder) external payable {
        if (builder == address(0)) revert ZeroAddress();
        _deposit(builder);
    }

    /// @notice Moves `amount` from available to pending and (re)starts the delay for the whole pending amount.
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Account storage a = _accounts[msg.sender];
        if (amount > a.available) revert AmountExceedsBalance(amount, a.available);
        a.available -= uint128(amount);
        a.pending += uint128(amount);
        uint64 readyAt = uint64(block.timestamp) + WITHDRAWAL_DELAY;
        _readyAt[msg.sender] = readyAt;
        emit WithdrawalRequested(msg.sender, amount, a.pending, readyAt);
    }

    /// @notice Sends the whole pending amount (less anything settled from it) once the delay is over.
    function withdraw() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.pending;
        if (amount == 0) revert NoPendingWithdrawal();
        uint64 readyAt = _readyAt[msg.sender];
        if (block.timestamp < readyAt) revert WithdrawalNotReady(readyAt);
        a.pending = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
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

    /// @notice Moves `amount` of `builder`'s collateral to `to`'s claimable earnings. Only the Inbox.
    function settle(address builder, address to, uint256 amount) external {
        if (msg.sender != inbox) revert NotInbox();
        Account memory a = _accounts[builder];
        uint256 avail = a.available;
        if (amount <= avail) {
            _accounts[builder].available = uint128(avail - amount);
        } else {
            uint256 held = avail + a.pending;
            if (amount > held) revert InsufficientEscrow(builder, amount, held);
            _accounts[builder] = Account(0, uint128(held - amount));
        }
        earningsOf[to] += amount;
        emit Settled(builder, to, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Available collateral (excludes amounts requested for withdrawal).
    function balanceOf(address builder) external view returns (uint256) {
        return _accounts[builder].available;
    }

    function pendingOf(address builder) external view returns (uint256) {
        return _accounts[builder].pending;
    }

    function withdrawalReadyAt(address builder) external view returns (uint64) {
        return _readyAt[builder];
    }

    // ------------------------------------------------------------------ internals

    function _deposit(address builder) private {
        if (msg.value == 0) revert ZeroAmount();
        Account storage a = _accounts[builder];
        uint256 next = uint256(a.available) + msg.value;
        if (next > type(uint128).max) revert BadConfig();
        a.available = uint128(next);
        emit Deposited(builder, msg.sender, msg.value);
    }

    function _claim(address payable to) private nonReentrant {
        uint256 amount = earningsOf[msg.sender];
        if (amount == 0) revert NothingToClaim();
        earningsOf[msg.sender] = 0;
        emit EarningsClaimed(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
